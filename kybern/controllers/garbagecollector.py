"""The garbage collector (upstream pkg/controller/garbagecollector), by
ownerReferences:

- a dependent none of whose owners exists any more is deleted (background);
  owners are matched by uid, and an owner missing from the cache is looked up
  live before anything is deleted, so a slow informer never kills a child;
- an object being deleted with the `foregroundDeletion` finalizer first has its
  dependents deleted; the finalizer goes once no dependent with
  blockOwnerDeletion is left;
- an object being deleted with the `orphan` finalizer has its ownerReference
  removed from every dependent, then the finalizer goes;
- a namespaced owner is looked for in its dependent's namespace only: one found
  elsewhere is reported (event OwnerRefInvalidNamespace) and counts as absent, and a
  cluster-scoped dependent of a namespaced kind is reported and never collected.

Every kind the server serves that can be listed, watched and deleted is watched
(events excepted), as upstream: GC_RESOURCES from the start, the others as
discovery (re-read every RESYNC seconds, and soon after an owner of an unknown
kind is seen) finds them, custom resources included. An owner of a kind
discovery does not know is never judged absent; its dependent is looked at
again when the kind appears.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import Handler, Informer, key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import (
    CONFIGMAPS,
    CONTROLLERREVISIONS,
    CRONJOBS,
    DAEMONSETS,
    DEPLOYMENTS,
    ENDPOINTSLICES,
    JOBS,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    REPLICASETS,
    REPLICATIONCONTROLLERS,
    SECRETS,
    SERVICES,
    STATEFULSETS,
    Resource,
)
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

GC_RESOURCES: list[Resource] = [PODS, REPLICASETS, REPLICATIONCONTROLLERS, DEPLOYMENTS, CONFIGMAPS, SECRETS,
                                SERVICES,
                                JOBS, CRONJOBS, DAEMONSETS, STATEFULSETS, CONTROLLERREVISIONS,
                                PERSISTENTVOLUMECLAIMS, ENDPOINTSLICES]
RESYNC = 30.0  # upstream's garbage collector re-reads discovery every 30 s
# upstream's ignoredResources: events are never owners' dependents worth a watch
IGNORED = {("", "events"), ("events.k8s.io", "events")}
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"

Ref = tuple[int, str]  # (index into resources, informer key)


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


async def deletable_resources(client: Client) -> list[Resource]:
    """Every resource served in its group's preferred version that supports list,
    watch and delete (upstream GetDeletableResources), events left out."""
    out: list[Resource] = []
    paths = ["/api/v1"]
    groups = await client.request("GET", "/apis")
    for g in groups.get("groups", []):
        paths.append(f"/apis/{g['preferredVersion']['groupVersion']}")
    for path in paths:
        try:
            doc = await client.request("GET", path)
        except errors.StatusError as e:
            # a group going away (its CRD deleted) between the two reads, or an aggregated
            # API that does not answer: the others are still watched, as upstream
            log.debug("garbage collector: discovery of %s failed: %s", path, e)
            continue
        group, _, version = doc["groupVersion"].rpartition("/")
        for r in doc.get("resources", []):
            if "/" in r["name"] or (group, r["name"]) in IGNORED \
                    or not {"list", "watch", "delete"} <= set(r.get("verbs", [])):
                continue
            out.append(Resource(group, version, r["name"], r["kind"], namespaced=bool(r.get("namespaced"))))
    return out


class GarbageCollector:
    name = "garbagecollector"

    def __init__(self, client: Client, informers: InformerFactory, *,
                 resources: list[Resource] | None = None, workers: int = 5, discover: bool = True) -> None:
        self.client = client
        self.workers = workers
        self.discover = discover
        self.resync = RESYNC
        self.factory = informers
        self.resources = list(resources or GC_RESOURCES)
        self.informers = [informers.informer(r) for r in self.resources]
        self._static = len(self.resources)
        self._by_kind = {(r.group, r.kind): i for i, r in enumerate(self.resources)}
        self._slot = {(r.group, r.plural): i for i, r in enumerate(self.resources)}
        # kinds found by discovery: index -> (informer, handler, whether the informer is ours to stop)
        self._found: dict[int, tuple[Informer, Handler, bool]] = {}
        self.queue = WorkQueue("garbagecollector")
        self.recorder = EventRecorder(client, "garbage-collector-controller")
        self._uid: dict[str, Ref] = {}
        self._dependents: dict[str, set[Ref]] = {}
        self._absent: OrderedDict[str, None] = OrderedDict()  # "uid/namespace" of owners verified gone
        self._unresolved: dict[str, None] = {}  # dependents waiting for an owner's kind to be served
        self._reported: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._kick = asyncio.Event()
        for i, inf in enumerate(self.informers):
            inf.add_handler(lambda t, o, n, i=i: self._on_event(i, t, o, n))

    async def run(self) -> None:
        # judge nothing before every cache is full: a half-synced graph looks like orphans
        await asyncio.gather(*(inf.wait_synced() for inf in self.informers))
        finder = asyncio.create_task(self._discover_loop(), name="garbagecollector-discovery") \
            if self.discover else None
        try:
            await run_workers(self.queue, self.reconcile, self.workers)
        finally:
            if finder is not None:
                finder.cancel()
            for i in list(self._found):
                await self._drop_resource(i)

    # -- discovery ---------------------------------------------------------------------
    async def _discover_loop(self) -> None:
        while True:
            self._kick.clear()
            try:
                await self.sync_resources()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("garbage collector: discovery failed: %r", e)
            try:
                await asyncio.wait_for(self._kick.wait(), self.resync)
                await asyncio.sleep(0.2)  # one discovery for a burst of unknown kinds
            except asyncio.TimeoutError:
                pass

    async def sync_resources(self) -> None:
        """Watch the kinds discovery lists that are not watched yet; stop watching
        the ones it no longer lists (a CRD deleted)."""
        served = {(r.group, r.plural): r for r in await deletable_resources(self.client)}
        added = False
        for key, res in served.items():
            i = self._slot.get(key)
            if i is None or (i >= self._static and i not in self._found):
                self._add_resource(res, i)
                added = True
        for i in list(self._found):
            r = self.resources[i]
            if (r.group, r.plural) not in served:
                await self._drop_resource(i)
        if added:
            waiting, self._unresolved = list(self._unresolved), {}
            for key in waiting:
                self.queue.add(key)

    def _add_resource(self, res: Resource, i: int | None) -> None:
        if i is None:
            i = len(self.resources)
            self.resources.append(res)
            self.informers.append(Informer(self.client, res))
            self._slot[(res.group, res.plural)] = i
        self.resources[i] = res
        inf = self.factory.existing(res)
        own = inf is None
        if inf is None:
            inf = Informer(self.client, res)
        self.informers[i] = inf
        self._by_kind[(res.group, res.kind)] = i

        def handler(t: str, o: dict[str, Any] | None, n: dict[str, Any], i: int = i) -> None:
            self._on_event(i, t, o, n)

        inf.add_handler(handler)
        self._found[i] = (inf, handler, own)
        if own:
            inf.start()

    async def _drop_resource(self, i: int) -> None:
        inf, handler, own = self._found.pop(i)
        inf.remove_handler(handler)
        res = self.resources[i]
        if self._by_kind.get((res.group, res.kind)) == i:
            del self._by_kind[(res.group, res.kind)]
        for obj in list(inf.cache.values()):
            self._on_event(i, "DELETED", obj, obj)
        if own:
            await inf.stop()
        self.informers[i] = Informer(self.client, res)  # never started: empty

    # -- the graph -------------------------------------------------------------------
    @staticmethod
    def _encode(ref: Ref) -> str:
        return f"{ref[0]}|{ref[1]}"

    def _enqueue(self, ref: Ref) -> None:
        self.queue.add(self._encode(ref))

    def _on_event(self, i: int, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        ref: Ref = (i, key_of(new))
        m = new["metadata"]
        uid = m.get("uid", "")
        owners = {r.get("uid") for r in m.get("ownerReferences") or []}
        old_owners = {r.get("uid") for r in (old or {}).get("metadata", {}).get("ownerReferences") or []}
        if typ == "DELETED":
            if self._uid.get(uid) == ref:
                del self._uid[uid]
            for o in owners | old_owners:
                deps = self._dependents.get(o)
                if deps is not None:
                    deps.discard(ref)
                    if not deps:
                        del self._dependents[o]
                if o in self._uid:
                    self._enqueue(self._uid[o])  # a foreground owner may now finish
            for dep in list(self._dependents.get(uid, ())):
                self._enqueue(dep)  # their owner is gone
            return
        self._uid[uid] = ref
        for o in old_owners - owners:
            deps = self._dependents.get(o)
            if deps is not None:
                deps.discard(ref)
        for o in owners:
            self._dependents.setdefault(o, set()).add(ref)
        if old is None:
            if owners or meta.is_deleting(new):
                self._enqueue(ref)
            return
        om = old["metadata"]
        if owners != old_owners or m.get("deletionTimestamp") != om.get("deletionTimestamp") \
                or m.get("finalizers") != om.get("finalizers"):
            self._enqueue(ref)
            if owners != old_owners:
                for o in old_owners - owners:
                    if o in self._uid:
                        self._enqueue(self._uid[o])

    def _get(self, ref: Ref) -> dict[str, Any] | None:
        return self.informers[ref[0]].get(ref[1])

    # -- reconcile -------------------------------------------------------------------
    async def reconcile(self, key: str) -> None:
        idx, objkey = key.split("|", 1)
        ref: Ref = (int(idx), objkey)
        obj = self._get(ref)
        if obj is None:
            return
        m = obj["metadata"]
        if meta.is_deleting(obj):
            fins = m.get("finalizers") or []
            if FOREGROUND in fins:
                await self._delete_dependents(ref, obj)
            elif ORPHAN in fins:
                await self._orphan_dependents(ref, obj)
            return
        refs = m.get("ownerReferences") or []
        if not refs:
            return
        solid, gone, waiting = [], [], []
        for owner in refs:
            state = await self._owner_state(obj, owner)
            if state == "invalid":
                return  # a cluster-scoped dependent of a namespaced owner: upstream gives up on it
            if state == "unknown":
                self._unresolved[key] = None  # looked at again once discovery knows the kind
                if not self._kick.is_set():
                    self._kick.set()
                return
            {"solid": solid, "gone": gone, "waiting": waiting}[state].append(owner)
        if solid:
            if gone or waiting:
                drop = {o.get("uid") for o in gone + waiting}
                await self._edit(ref, obj, lambda o: _drop_owner_refs(o, drop))
            return
        if waiting and self._dependents.get(m.get("uid", "")):
            policy = "Foreground"  # its owner waits for the whole subtree
        else:
            fins = m.get("finalizers") or []
            policy = "Orphan" if ORPHAN in fins else "Foreground" if FOREGROUND in fins else "Background"
        await self._delete(ref, obj, policy)

    async def _owner_state(self, obj: dict[str, Any], owner: dict[str, Any]) -> str:
        """solid (exists), gone (verified absent), waiting (exists and is deleting
        its dependents in the foreground), unknown (a kind discovery does not list)
        or invalid (a namespaced owner of a cluster-scoped dependent)."""
        uid = owner.get("uid", "")
        i = self._by_kind.get((_group(owner.get("apiVersion", "")), owner.get("kind", "")))
        if i is None:
            return "unknown"
        res = self.resources[i]
        dep_ns = obj["metadata"].get("namespace") or ""
        ns = dep_ns if res.namespaced else ""
        cached_ref = self._uid.get(uid)
        live: dict[str, Any] | None = self._get(cached_ref) if cached_ref else None
        if live is not None and res.namespaced and (live["metadata"].get("namespace") or "") != dep_ns:
            # the owner lives in another namespace: it is not this dependent's owner
            self._report_invalid_namespace(obj, owner)
            live = None
        if res.namespaced and not dep_ns:
            return "invalid"
        if live is None:
            absent_key = f"{uid}/{ns}"
            if absent_key in self._absent:
                return "gone"
            try:
                live = await self.client.get(res, owner.get("name", ""), ns or None)
            except errors.StatusError as e:
                if e.code != 404:
                    raise
                live = None
            if live is None or live["metadata"].get("uid") != uid:
                self._absent[absent_key] = None
                if len(self._absent) > 10000:
                    self._absent.popitem(last=False)
                return "gone"
        if meta.is_deleting(live) and FOREGROUND in (live["metadata"].get("finalizers") or []):
            return "waiting"
        return "solid"

    def _report_invalid_namespace(self, obj: dict[str, Any], owner: dict[str, Any]) -> None:
        """Upstream's warning, once per dependent and owner."""
        m = obj["metadata"]
        seen = (m.get("uid", ""), owner.get("uid", ""))
        if seen in self._reported:
            return
        self._reported[seen] = None
        if len(self._reported) > 10000:
            self._reported.popitem(last=False)
        ns = m.get("namespace") or ""
        ident = (f"[{owner.get('apiVersion', '')}/{owner.get('kind', '')}, namespace: {ns}, "
                 f"name: {owner.get('name', '')}, uid: {owner.get('uid', '')}]")
        self.recorder.event(obj, "Warning", "OwnerRefInvalidNamespace",
                            f"ownerRef {ident} does not exist in namespace \"{ns}\"")

    async def _delete_dependents(self, ref: Ref, obj: dict[str, Any]) -> None:
        uid = obj["metadata"]["uid"]
        blocking = []
        for dep_ref in list(self._dependents.get(uid, ())):
            dep = self._get(dep_ref)
            if dep is None:
                continue
            for r in dep["metadata"].get("ownerReferences") or []:
                if r.get("uid") == uid and r.get("blockOwnerDeletion"):
                    blocking.append(dep_ref)
        if not blocking:
            await self._edit(ref, obj, lambda o: _drop_finalizer(o, FOREGROUND))
            return
        for dep_ref in blocking:
            dep = self._get(dep_ref)
            if dep is not None and FOREGROUND not in (dep["metadata"].get("finalizers") or []):
                self._enqueue(dep_ref)

    async def _orphan_dependents(self, ref: Ref, obj: dict[str, Any]) -> None:
        uid = obj["metadata"]["uid"]
        for dep_ref in list(self._dependents.get(uid, ())):
            dep = self._get(dep_ref)
            if dep is not None:
                await self._edit(dep_ref, dep, lambda o: _drop_owner_refs(o, {uid}))
        await self._edit(ref, obj, lambda o: _drop_finalizer(o, ORPHAN))

    async def _delete(self, ref: Ref, obj: dict[str, Any], policy: str) -> None:
        m = obj["metadata"]
        try:
            await self.client.delete(self.resources[ref[0]], m["name"], m.get("namespace"),
                                     propagation_policy=policy, preconditions={"uid": m["uid"]})
        except errors.StatusError as e:
            if e.code not in (404, 409):
                raise

    async def _edit(self, ref: Ref, obj: dict[str, Any], change: Any) -> None:
        """Read live, apply `change` (returns False if nothing to do), write back; retry
        on conflict. GET+PUT keeps optimistic locking on lists (finalizers, refs)."""
        res = self.resources[ref[0]]
        m = obj["metadata"]
        for _ in range(5):
            try:
                live = await self.client.get(res, m["name"], m.get("namespace"))
            except errors.StatusError as e:
                if e.code == 404:
                    return
                raise
            if live["metadata"].get("uid") != m.get("uid") or not change(live):
                return
            try:
                await self.client.update(res, live)
                return
            except errors.StatusError as e:
                if e.code == 404:
                    return
                if e.code != 409:
                    raise
        raise errors.conflict(res.group, res.plural, m["name"], errors.OPTIMISTIC_LOCK)


def _drop_owner_refs(obj: dict[str, Any], uids: set[str]) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    kept = [r for r in refs if r.get("uid") not in uids]
    if len(kept) == len(refs):
        return False
    if kept:
        obj["metadata"]["ownerReferences"] = kept
    else:
        obj["metadata"].pop("ownerReferences", None)
    return True


def _drop_finalizer(obj: dict[str, Any], name: str) -> bool:
    fins = obj["metadata"].get("finalizers") or []
    if name not in fins:
        return False
    obj["metadata"]["finalizers"] = [f for f in fins if f != name]
    return True
