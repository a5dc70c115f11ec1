"""Serving custom resources: the apiserver's side of CustomResourceDefinitions
(apiextensions-apiserver's naming, establishing and finalizer controllers and
its dynamic REST handler, in one watcher).

`CRDServer.start()` installs every CRD found in storage before the server takes
requests (so custom resources survive a restart), then watches CRDs:

- a new or changed CRD gets `status.acceptedNames` and the `NamesAccepted` and
  `Established` conditions (or NamesAccepted=False on a name conflict with another
  CRD of its group), and each served version is installed: a ResourceInfo in the
  registry (REST, discovery), its OpenAPI definitions (`kubectl explain`,
  validation), its table printer and, if declared, its `scale` subresource;
- a deleted CRD is `Terminating`: creates are refused, every custom resource is
  deleted (custom resource finalizers are waited for), then the CRD goes and
  its endpoints with it.

The watcher works on the apiserver's own RESTStores, as upstream's controllers
live inside the apiextensions apiserver.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from kybern.api import crd as crd_api
from kybern.api import crprinter, customresource, schemas, tables
from kybern.api.registry import ResourceInfo
from kybern.apiserver import rest
from kybern.apiserver.store import Predicate, RESTStore
from kybern.machinery import errors

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

log = logging.getLogger(__name__)
Obj = dict[str, Any]
CLEANUP_POLL = 0.5


_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")
_STABILITY = {"alpha": 0, "beta": 1, None: 2}


def compare_kube_versions(a: str, b: str) -> int:
    """Upstream's version.CompareKubeAwareVersionStrings: above 0 when `a` is the
    more stable or newer (v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > other names)."""
    if a == b:
        return 0
    ma, mb = _KUBE_VERSION.match(a), _KUBE_VERSION.match(b)
    if not ma and not mb:
        return (b > a) - (b < a)  # strings.Compare(v2, v1)
    if not ma:
        return -1
    if not mb:
        return 1
    ka = (_STABILITY[ma[2]], int(ma[1]), int(ma[3] or 0))
    kb = (_STABILITY[mb[2]], int(mb[1]), int(mb[3] or 0))
    return (ka > kb) - (ka < kb)


def deprecation_warnings(crd: Obj) -> dict[tuple[str, str], str]:
    """(version, plural) -> the Warning every request to a deprecated served version
    gets: its deprecationWarning, else upstream's defaultDeprecationWarning (the
    newest served, not deprecated, more stable version is suggested)."""
    spec = crd.get("spec") or {}
    group, kind = spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
    plural = (spec.get("names") or {}).get("plural", "")
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    out: dict[tuple[str, str], str] = {}
    for v in versions:
        if not (v.get("served") and v.get("deprecated")):
            continue
        name = v.get("name", "")
        if v.get("deprecationWarning") is not None:
            out[(name, plural)] = v["deprecationWarning"]
            continue
        msg = f"{group}/{name} {kind} is deprecated"
        better = sorted((w.get("name", "") for w in versions if w.get("served") and not w.get("deprecated")
                         and compare_kube_versions(name, w.get("name", "")) < 0),
                        key=functools.cmp_to_key(compare_kube_versions), reverse=True)
        if better:
            msg += f"; use {group}/{better[0]} {kind}"
        out[(name, plural)] = msg
    return out


class _Installed:
    def __init__(self, fingerprint: bytes, infos: list[ResourceInfo], defs: list[str], kind: str) -> None:
        self.fingerprint = fingerprint
        self.infos = infos
        self.defs = defs
        self.kind = kind


class CRDServer:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.installed: dict[str, _Installed] = {}
        # (group, version, plural) -> the Warning of a deprecated CRD version
        self.deprecations: dict[tuple[str, str, str], str] = {}
        self._task: asyncio.Task[None] | None = None
        self._cleanups: dict[str, asyncio.Task[None]] = {}

    @property
    def crd_store(self) -> RESTStore:
        return self.server.store(crd_api.GROUP, "v1", "customresourcedefinitions")

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        rv = await self._resync()
        self._task = asyncio.create_task(self._run(rv), name="crd-server")

    async def stop(self) -> None:
        for t in [self._task, *self._cleanups.values()]:
            if t is not None:
                t.cancel()
        for t in [self._task, *self._cleanups.values()]:
            if t is not None:
                try:
                    await t
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                    pass

    async def _resync(self) -> str:
        lst = await self.crd_store.list(None, pred=Predicate())
        names = set()
        for crd in lst["items"]:
            names.add(crd["metadata"]["name"])
            await self.sync(crd)
        for name in set(self.installed) - names:
            self.uninstall(name)
        return str(lst["metadata"]["resourceVersion"])

    async def _run(self, rv: str) -> None:
        while True:
            try:
                async for typ, crd in self._events(rv):
                    rv = crd["metadata"].get("resourceVersion", rv)
                    if typ == "DELETED":
                        self.uninstall(crd["metadata"]["name"])
                    else:
                        await self.sync(crd)
            except asyncio.CancelledError:
                raise
            except errors.StatusError as e:
                if e.code != 410:
                    log.exception("CRD watch failed")
                    await asyncio.sleep(1)
                rv = await self._resync()
            except Exception:  # keep serving; a later event or resync repairs the state
                log.exception("CRD watch failed")
                await asyncio.sleep(1)
                rv = await self._resync()

    async def _events(self, rv: str) -> AsyncIterator[tuple[str, Obj]]:
        """(type, CRD) pairs after `rv`, from the store's watch (the watch cache)."""
        w: Any = await self.crd_store.watch(None, pred=Predicate(), resource_version=rv)
        if hasattr(w, "__aiter__"):
            async for typ, obj in w:
                yield typ, obj
            return
        try:
            while True:
                batch = await w.next_batch(30.0)
                if batch is None:
                    return
                if isinstance(batch, str):  # progress only
                    continue
                for typ, entry in batch:
                    yield typ, entry.decode()
        finally:
            w.close()

    # -- one CRD ---------------------------------------------------------------
    async def sync(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        if crd["metadata"].get("deletionTimestamp"):
            if name in self.installed or crd_api.condition(crd, "Established"):
                self.install(crd)
            if name not in self._cleanups or self._cleanups[name].done():
                self._cleanups[name] = asyncio.create_task(self._cleanup(name), name=f"crd-cleanup-{name}")
            return
        want = copy.deepcopy(crd)
        accepted = self._accept_names(want)
        if accepted:
            self.install(want)  # serve first: Established must mean "ready for requests"
        else:
            self.uninstall(name)
        if want.get("status") != crd.get("status"):
            await self._write_status(name, want["status"])

    def _accept_names(self, crd: Obj) -> bool:
        """Set acceptedNames and the NamesAccepted/Established conditions on `crd`."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        conflict = ""
        for other_name, inst in self.installed.items():
            if other_name == crd["metadata"]["name"] or not inst.infos or inst.infos[0].group != spec.get("group"):
                continue
            other = inst.infos[0]
            if other.plural == names.get("plural"):
                conflict = f'"{other.plural}" is already in use'
                break
            if other.kind == names.get("kind"):
                conflict = f'"{other.kind}" is already in use'
                break
            taken = set(names.get("shortNames") or ()) & set(other.short_names)
            if taken:
                conflict = f'"{sorted(taken)[0]}" is already in use'
                break
        status = crd.setdefault("status", {})
        if conflict:
            crd_api.set_condition(crd, "NamesAccepted", "False", "NameConflict" if "in use" in conflict
                                  else "Conflict", conflict)
            crd_api.set_condition(crd, "Established", "False", "NotAccepted", "not all names are accepted")
            return False
        status["acceptedNames"] = {k: copy.deepcopy(v) for k, v in names.items()
                                   if k in ("plural", "singular", "shortNames", "kind", "listKind", "categories")}
        crd_api.set_condition(crd, "NamesAccepted", "True", "NoConflicts", "no conflicts found")
        crd_api.set_condition(crd, "Established", "True", "InitialNamesAccepted",
                              "the initial names have been accepted")
        return True

    async def _write_status(self, name: str, status: Obj) -> None:
        def make(cur: Obj | None) -> Obj:
            if cur is None:
                raise errors.not_found(crd_api.GROUP, "customresourcedefinitions", name)
            cur["status"] = {**(cur.get("status") or {}), **{k: v for k, v in status.items()
                                                             if k != "storedVersions"}}
            cur["metadata"].pop("resourceVersion", None)
            return cur
        try:
            await self.crd_store.update(None, name, make, subresource="status")
        except errors.StatusError as e:
            if e.code != 404:
                raise

    # -- serving ---------------------------------------------------------------
    def install(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        fingerprint = orjson.dumps([crd.get("spec"), (crd.get("status") or {}).get("acceptedNames"),
                                    bool(crd["metadata"].get("deletionTimestamp")), crd["metadata"].get("uid")],
                                   option=orjson.OPT_SORT_KEYS)
        old = self.installed.get(name)
        if old is not None and old.fingerprint == fingerprint:
            return
        infos = customresource.resource_infos(crd)
        defs = customresource.definitions(crd)
        reg = self.server.registry
        keep = {(i.group, i.version, i.plural) for i in infos}
        if old is not None:
            for i in old.infos:
                if (i.group, i.version, i.plural) not in keep:
                    reg.remove(i.group, i.version, i.plural)
            for d in old.defs:
                if d not in defs:
                    schemas.unregister(d)
            if infos and old.kind != infos[0].kind:
                tables.PRINTERS.pop((old.infos[0].group, old.kind), None)
        for info in infos:
            reg.add(info)
        for dname, (schema, gvks) in defs.items():
            schemas.register(dname, schema, gvks=gvks)
        if infos:
            first = infos[0]
            tables.PRINTERS[(first.group, first.kind)] = crprinter.printer(customresource.printer_columns(crd))
            if any("scale" in i.subresources for i in infos):
                self.server.subresources[(first.group, first.plural, "scale")] = scale
        self.installed[name] = _Installed(fingerprint, infos, list(defs), infos[0].kind if infos else "")
        for i in old.infos if old is not None else ():
            self.deprecations.pop((i.group, i.version, i.plural), None)
        group = (crd.get("spec") or {}).get("group", "")
        for (version, plural), w in deprecation_warnings(crd).items():
            self.deprecations[(group, version, plural)] = w
        log.info("serving %s (%s)", name, ", ".join(i.version for i in infos))

    def uninstall(self, name: str) -> None:
        old = self.installed.pop(name, None)
        if old is None:
            return
        for i in old.infos:
            self.server.registry.remove(i.group, i.version, i.plural)
            self.server.subresources.pop((i.group, i.plural, "scale"), None)
            self.deprecations.pop((i.group, i.version, i.plural), None)
        if old.infos:
            tables.PRINTERS.pop((old.infos[0].group, old.kind), None)
        for d in old.defs:
            schemas.unregister(d)
        log.info("stopped serving %s", name)

    async def _cleanup(self, name: str) -> None:
        """Delete every custom resource of a terminating CRD, then let the CRD go."""
        try:
            inst = self.installed.get(name)
            reason, message = "NeverEstablished", "resource was never established"
            if inst is not None and inst.infos:
                store = self.server.store_for(inst.infos[0])
                while True:
                    items = (await store.list(None, pred=Predicate()))["items"]
                    pending = [o for o in items if not o["metadata"].get("deletionTimestamp")]
                    for o in pending:
                        try:
                            await store.delete(o["metadata"].get("namespace"), o["metadata"]["name"], {})
                        except errors.StatusError as e:
                            if e.code != 404:
                                raise
                    if not items:
                        break
                    await asyncio.sleep(CLEANUP_POLL)  # custom resources with finalizers
                reason, message = "InstanceDeletionCompleted", "removed all instances"

            def make(cur: Obj | None) -> Obj:
                if cur is None:
                    raise errors.not_found(crd_api.GROUP, "customresourcedefinitions", name)
                crd_api.set_condition(cur, "Terminating", "False", reason, message)
                cur["metadata"].pop("resourceVersion", None)
                return cur
            await self.crd_store.update(None, name, make, subresource="status")
        except errors.StatusError as e:
            if e.code != 404:
                log.exception("cleaning up CRD %s", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("cleaning up CRD %s", name)


# -- the scale subresource of custom resources ---------------------------------------
def _first(obj: Obj, path: str) -> Any:
    steps = crprinter.parse(path) if path else None
    found = crprinter.find(obj, steps) if steps else []
    return found[0] if found else None


def _set(obj: Obj, path: str, value: Any) -> None:
    keys = [k for k in path.strip(".").split(".") if k]
    cur = obj
    for k in keys[:-1]:
        nxt = cur.get(k)
        if not isinstance(nxt, dict):
            nxt = cur[k] = {}
        cur = nxt
    cur[keys[-1]] = value


def to_scale(obj: Obj, paths: Obj) -> Obj:
    m = obj["metadata"]
    status: Obj = {"replicas": _first(obj, str(paths.get("statusReplicasPath", ""))) or 0}
    selector = _first(obj, str(paths.get("labelSelectorPath", "")))
    if isinstance(selector, str) and selector:
        status["selector"] = selector
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in m},
            "spec": {"replicas": _first(obj, str(paths.get("specReplicasPath", ""))) or 0},
            "status": status}


async def scale(server: APIServer, request: web.Request, store: RESTStore, ns: str | None,
                name: str) -> web.StreamResponse:
    paths = customresource.scale_paths(store.info) or {}
    if request.method == "GET":
        return rest.json_response(to_scale(await store.get(ns, name), paths))
    if request.method not in ("PUT", "PATCH"):
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    raw = await request.read()
    ctype = (request.headers.get("Content-Type") or "application/json").split(";")[0].strip()

    def make(cur: Obj | None) -> Obj:
        if cur is None:
            raise errors.not_found(store.info.group, store.info.plural, name)
        if request.method == "PUT":
            sc = rest.decode_body(raw, ctype)
        else:
            sc = server.apply_patch(ctype, raw, to_scale(copy.deepcopy(cur), paths),
                                    "io.k8s.api.autoscaling.v1.Scale")
        if not isinstance(sc, dict):
            raise errors.bad_request("invalid Scale object")
        replicas = (sc.get("spec") or {}).get("replicas", 0)
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid("autoscaling", "Scale", name, [errors.cause(
                "spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")])
        want_rv = (sc.get("metadata") or {}).get("resourceVersion")
        if request.method == "PUT" and want_rv and want_rv != cur["metadata"]["resourceVersion"]:
            raise errors.conflict(store.info.group, store.info.plural, name, errors.OPTIMISTIC_LOCK)
        _set(cur, str(paths.get("specReplicasPath", ".spec.replicas")), replicas)
        cur["metadata"].pop("resourceVersion", None)
        return cur

    obj, _ = await store.update(ns, name, make)
    return rest.json_response(to_scale(obj, paths))
