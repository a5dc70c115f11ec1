"""The ReplicaSet controller (upstream pkg/controller/replicaset): keep
spec.replicas active pods matching the selector, owned through a controller
ownerReference, and report what it sees in status.

reconcile(key) reads the ReplicaSet and its namespace's pods from the shared
informers, adopts/releases pods, creates or deletes the difference (unless its
own earlier writes are still in flight: expectations), then writes status.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import PODS, REPLICASETS
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.controllers import podutil
from kybern.controllers.deletion_order import rank_for_deletion
from kybern.controllers.expectations import Expectations
from kybern.controllers.ownership import claim, fresh_owner_check
from kybern.machinery import errors, meta
from kybern.machinery.selectors import selector_matches

log = logging.getLogger(__name__)

BURST_REPLICAS = 500  # upstream burstReplicas: most creations/deletions per sync


def _copy(obj: Any) -> Any:
    return orjson.loads(orjson.dumps(obj))


async def slow_start_batch(count: int, fn: Any, initial: int = 1) -> tuple[int, Exception | None]:
    """Call fn() count times in doubling concurrent batches (1, 2, 4, ...), stopping
    after the first batch with a failure, so a quota error costs one call, not 500."""
    done = 0
    batch = min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, Exception)]
        done += batch - len(failures)
        if failures:
            return done, failures[0]
        remaining = count - done
        batch = min(remaining, 2 * batch)
    return done, None


def calculate_status(rs: dict[str, Any], pods: list[dict[str, Any]],
                     manage_error: Exception | None) -> dict[str, Any]:
    """The ReplicaSet status for the claimed active pods (calculateStatus)."""
    spec = rs.get("spec", {})
    tmpl_labels = (spec.get("template", {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    now = podutil.utcnow()
    fully = ready = available = 0
    for p in pods:
        labels = p["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in tmpl_labels.items()):
            fully += 1
        if podutil.is_ready(p):
            ready += 1
            if podutil.is_available(p, min_ready, now):
                available += 1
    old = rs.get("status") or {}
    conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    failure = next((c for c in old.get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
    if manage_error is not None:
        if failure is None:
            diff = len(pods) - int(spec.get("replicas", 1))
            reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
            msg = getattr(manage_error, "message", None) or str(manage_error)
            failure = {"type": "ReplicaFailure", "status": "True", "lastTransitionTime": meta.now(),
                       "reason": reason, "message": msg}
        conditions.append(failure)
    status: dict[str, Any] = {"replicas": len(pods)}
    # upstream omits zero counters (omitempty); keep the same JSON shape
    for k, v in (("fullyLabeledReplicas", fully), ("readyReplicas", ready),
                 ("availableReplicas", available),
                 ("observedGeneration", int(rs["metadata"].get("generation") or 0))):
        if v:
            status[k] = v
    if conditions:
        status["conditions"] = conditions
    return status


class ReplicaSetController:
    name = "replicaset"
    # what it manages: the replication manager (replication.py) is this controller for
    # v1 ReplicationControllers, as upstream's wraps the ReplicaSet controller
    resource = REPLICASETS
    component = "replicaset-controller"

    def __init__(self, client: Client, informers: InformerFactory, *, workers: int = 5) -> None:
        self.client = client
        self.workers = workers
        self.rs_informer = informers.informer(self.resource)
        self.pod_informer = informers.informer(PODS)
        self.queue = WorkQueue(self.name)
        self.expectations = Expectations()
        self.recorder = EventRecorder(client, self.component)
        self._pods_by_ns: dict[str, set[str]] = {}
        self.rs_informer.add_handler(self._on_rs)
        self.pod_informer.add_handler(self._on_pod)

    async def run(self) -> None:
        await run_workers(self.queue, self.reconcile, self.workers)

    def selector(self, rs: dict[str, Any]) -> Any:
        """spec.selector as a LabelSelector."""
        return rs.get("spec", {}).get("selector")

    # -- event handlers: map events to ReplicaSet keys --------------------------
    def _on_rs(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        key = key_of(new)
        if typ == "DELETED":
            self.expectations.delete(key)
        self.queue.add(key)

    def _owner(self, pod: dict[str, Any]) -> dict[str, Any] | None:
        ref = meta.controller_of(pod)
        if ref is None or ref.get("kind") != self.resource.kind:
            return None
        rs = self.rs_informer.get(f"{pod['metadata'].get('namespace')}/{ref.get('name')}")
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return rs

    def _enqueue_matching(self, pod: dict[str, Any]) -> None:
        ns = pod["metadata"].get("namespace")
        labels = pod["metadata"].get("labels") or {}
        for rs in self.rs_informer.list(ns):
            if selector_matches(self.selector(rs), labels):
                self.queue.add(key_of(rs))

    def _index(self, typ: str, pod: dict[str, Any]) -> None:
        ns = pod["metadata"].get("namespace") or ""
        keys = self._pods_by_ns.setdefault(ns, set())
        if typ == "DELETED":
            keys.discard(key_of(pod))
        else:
            keys.add(key_of(pod))

    def _pod_gone(self, pod: dict[str, Any]) -> None:
        rs = self._owner(pod)
        if rs is not None:
            k = key_of(rs)
            self.expectations.deletion_observed(k, key_of(pod))
            self.queue.add(k)

    def _on_pod(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        self._index(typ, new)
        if typ == "DELETED":
            self._pod_gone(new)
            return
        if old is None:
            if meta.is_deleting(new):
                self._pod_gone(new)
                return
            rs = self._owner(new)
            if rs is not None:
                self.expectations.creation_observed(key_of(rs))
                self.queue.add(key_of(rs))
            elif meta.controller_of(new) is None:
                self._enqueue_matching(new)
            return
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        labels_changed = old["metadata"].get("labels") != new["metadata"].get("labels")
        if meta.is_deleting(new):
            self._pod_gone(new)
            if labels_changed:
                self._pod_gone(old)
            return
        old_ref, cur_ref = meta.controller_of(old), meta.controller_of(new)
        ref_changed = (old_ref or {}).get("uid") != (cur_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            prev = self._owner(old)
            if prev is not None:
                self.queue.add(key_of(prev))
        rs = self._owner(new)
        if rs is not None:
            self.queue.add(key_of(rs))
            min_ready = int(rs.get("spec", {}).get("minReadySeconds") or 0)
            if min_ready > 0 and not podutil.is_ready(old) and podutil.is_ready(new):
                self.queue.add_after(key_of(rs), float(min_ready))
            return
        if cur_ref is None and (labels_changed or ref_changed):
            self._enqueue_matching(new)

    # -- reconcile ---------------------------------------------------------------
    def _pods_in(self, ns: str) -> list[dict[str, Any]]:
        out = []
        for k in self._pods_by_ns.get(ns, ()):
            p = self.pod_informer.get(k)
            if p is not None:
                out.append(p)
        return out

    async def reconcile(self, key: str) -> None:
        rs = self.rs_informer.get(key)
        if rs is None:
            self.expectations.delete(key)
            return
        ns = rs["metadata"].get("namespace") or ""
        needs_sync = self.expectations.satisfied(key)
        active = [p for p in self._pods_in(ns) if podutil.is_active(p)]
        pods = await claim(self.client, PODS, rs, self.selector(rs), active,
                           fresh_owner_check(self.client, self.resource, rs))
        manage_error: Exception | None = None
        if needs_sync and not meta.is_deleting(rs):
            try:
                await self._manage(key, rs, pods)
            except Exception as e:  # noqa: BLE001 - reported in status, then retried with backoff
                manage_error = e
        updated = await self._write_status(rs, calculate_status(rs, pods, manage_error))
        spec = updated.get("spec", {})
        st = updated.get("status", {})
        min_ready = int(spec.get("minReadySeconds") or 0)
        want = int(spec.get("replicas", 1))
        if manage_error is None and min_ready > 0 and st.get("readyReplicas", 0) == want \
                and st.get("availableReplicas", 0) != want:
            self.queue.add_after(key, float(min_ready))
        if manage_error is not None:
            raise manage_error

    async def _manage(self, key: str, rs: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        diff = len(pods) - int(rs.get("spec", {}).get("replicas", 1))
        if diff < 0:
            n = min(-diff, BURST_REPLICAS)
            self.expectations.expect_creations(key, n)
            done, err = await slow_start_batch(n, lambda: self._create_pod(rs))
            for _ in range(n - done):  # never coming: stop waiting for them
                self.expectations.creation_observed(key)
            if err is not None:
                raise err
        elif diff > 0:
            n = min(diff, BURST_REPLICAS)
            victims = rank_for_deletion(pods, self._related_pods(rs))[:n]
            self.expectations.expect_deletions(key, [key_of(p) for p in victims])
            results = await asyncio.gather(*(self._delete_pod(rs, p) for p in victims),
                                           return_exceptions=True)
            first: Exception | None = None
            for p, r in zip(victims, results):
                if isinstance(r, Exception):
                    self.expectations.deletion_observed(key, key_of(p))
                    if not (isinstance(r, errors.StatusError) and r.code == 404):
                        first = first or r
            if first is not None:
                raise first

    def _related_pods(self, rs: dict[str, Any]) -> list[dict[str, Any]]:
        """Pods of every ReplicaSet sharing this one's controller (getIndirectlyRelatedPods)."""
        ns = rs["metadata"].get("namespace") or ""
        ctrl = meta.controller_of(rs)
        if ctrl is None:
            uids = {rs["metadata"]["uid"]}
        else:
            uids = {r["metadata"]["uid"] for r in self.rs_informer.list(ns)
                    if (meta.controller_of(r) or {}).get("uid") == ctrl.get("uid")}
        return [p for p in self._pods_in(ns) if (meta.controller_of(p) or {}).get("uid") in uids]

    async def _create_pod(self, rs: dict[str, Any]) -> None:
        m = rs["metadata"]
        tmpl = rs.get("spec", {}).get("template") or {}
        tmeta = tmpl.get("metadata") or {}
        pod_meta: dict[str, Any] = {
            "generateName": f"{m['name']}-", "namespace": m.get("namespace"),
            "labels": dict(tmeta.get("labels") or {}),
            "ownerReferences": [meta.owner_ref(rs, controller=True)],
        }
        if tmeta.get("annotations"):
            pod_meta["annotations"] = dict(tmeta["annotations"])
        if tmeta.get("finalizers"):
            pod_meta["finalizers"] = list(tmeta["finalizers"])
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
               "spec": _copy(tmpl.get("spec") or {})}
        try:
            created = await self.client.create(PODS, pod, m.get("namespace"))
        except errors.StatusError as e:
            self.recorder.event(rs, "Warning", "FailedCreate", f"Error creating: {e.message}")
            raise
        self.recorder.event(rs, "Normal", "SuccessfulCreate",
                            f"Created pod: {created['metadata']['name']}")

    async def _delete_pod(self, rs: dict[str, Any], pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        try:
            await self.client.delete(PODS, name, pod["metadata"].get("namespace"))
        except errors.StatusError as e:
            if e.code != 404:
                self.recorder.event(rs, "Warning", "FailedDelete", f"Error deleting: {e.message}")
            raise
        self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

    async def _write_status(self, rs: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        if _same_status(rs.get("status") or {}, status):
            return rs
        obj = dict(rs)
        for attempt in range(2):
            obj = dict(obj)
            obj["status"] = status
            try:
                return await self.client.update(self.resource, obj, subresource="status")
            except errors.StatusError as e:
                if e.code == 404:
                    return rs
                if e.code != 409 or attempt == 1:
                    raise
                m = rs["metadata"]  # someone wrote meanwhile: retry on the fresh object
                obj = await self.client.get(self.resource, m["name"], m.get("namespace"))
        return rs


def _same_status(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def norm(s: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in s.items() if v not in (0, None, [], {})}
    return norm(old) == norm(new)
