"""The garbage collector (upstream pkg/controller/garbagecollector), by
ownerReferences:

- a dependent none of whose owners exists any more is deleted (background);
  owners are matched by uid, and an owner missing from the cache is looked up
  live before anything is deleted, so a slow informer never kills a child;
- an object being deleted with the `foregroundDeletion` finalizer first has its
  dependents deleted; the finalizer goes once no dependent with
  blockOwnerDeletion is left;
- an object being deleted with the `orphan` finalizer has its ownerReference
  removed from every dependent, then the finalizer goes.

The watched kinds are the list GC_RESOURCES: add a kind there when the apiserver
serves it. Owners of kinds outside the list are never judged absent.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from kybern.client.http import Client
from kybern.client.informer import key_of
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
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"

Ref = tuple[int, str]  # (index into resources, informer key)


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


class GarbageCollector:
    name = "garbagecollector"

    def __init__(self, client: Client, informers: InformerFactory, *,
                 resources: list[Resource] | None = None, workers: int = 5) -> None:
        self.client = client
        self.workers = workers
        self.resources = list(resources or GC_RESOURCES)
        self.informers = [informers.informer(r) for r in self.resources]
        self._by_kind = {(r.group, r.kind): i for i, r in enumerate(self.resources)}
        self.queue = WorkQueue("garbagecollector")
        self._uid: dict[str, Ref] = {}
        self._dependents: dict[str, set[Ref]] = {}
        self._absent: OrderedDict[str, None] = OrderedDict()  # owner uids verified gone
        for i, inf in enumerate(self.informers):
            inf.add_handler(lambda t, o, n, i=i: self._on_event(i, t, o, n))

    async def run(self) -> None:
        # judge nothing before every cache is full: a half-synced graph looks like orphans
        await asyncio.gather(*(inf.wait_synced() for inf in self.informers))
        await run_workers(self.queue, self.reconcile, self.workers)

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
        """solid (exists), gone (verified absent), or waiting (exists and is deleting
        its dependents in the foreground)."""
        uid = owner.get("uid", "")
        cached_ref = self._uid.get(uid)
        live: dict[str, Any] | None = self._get(cached_ref) if cached_ref else None
        if live is None:
            if uid in self._absent:
                return "gone"
            i = self._by_kind.get((_group(owner.get("apiVersion", "")), owner.get("kind", "")))
            if i is None:
                return "solid"  # a kind we cannot look up: never judge it absent
            res = self.resources[i]
            ns = obj["metadata"].get("namespace") if res.namespaced else None
            try:
                live = await self.client.get(res, owner.get("name", ""), ns)
            except errors.StatusError as e:
                if e.code != 404:
                    raise
                live = None
            if live is None or live["metadata"].get("uid") != uid:
                self._absent[uid] = None
                if len(self._absent) > 10000:
                    self._absent.popitem(last=False)
                return "gone"
        if meta.is_deleting(live) and FOREGROUND in (live["metadata"].get("finalizers") or []):
            return "waiting"
        return "solid"

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
