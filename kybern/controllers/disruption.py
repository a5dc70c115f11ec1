"""Disruption controller (upstream pkg/controller/disruption): keeps each
PodDisruptionBudget's status — how many of its pods are healthy, how many must be,
how many may be disrupted now — which the apiserver's eviction subresource reads
(and decrements) before it lets `kubectl drain` evict a pod.

expectedPods is the number of matching pods when minAvailable is a number, else
the scale of the pods' controllers (a ReplicaSet's Deployment, a StatefulSet, a
ReplicationController, a ReplicaSet). A pod counts as healthy when it is Ready,
not being deleted and not in disruptedPods (evictions the apiserver granted in the
last two minutes whose pods have not gone yet)."""

from __future__ import annotations

import datetime as _dt
import logging
import math
from typing import Any

from kybern.client.http import Client
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import DEPLOYMENTS, PODS, REPLICASETS, STATEFULSETS, Resource
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.controllers import podutil
from kybern.machinery import errors, meta, selectors

log = logging.getLogger(__name__)

PDBS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
REPLICATIONCONTROLLERS = Resource("", "v1", "replicationcontrollers", "ReplicationController")
DELETION_TIMEOUT = 120.0  # upstream DeletionTimeout: a granted eviction whose pod is still there


class NoController(Exception):
    pass


def _scaled(value: Any, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent(value, total, roundUp=true)."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


class DisruptionController:
    name = "disruption"

    def __init__(self, client: Client, informers: InformerFactory) -> None:
        self.client = client
        self.pdbs = informers.informer(PDBS)
        self.pods = informers.informer(PODS)
        self.replicasets = informers.informer(REPLICASETS)
        self.deployments = informers.informer(DEPLOYMENTS)
        self.statefulsets = informers.informer(STATEFULSETS)
        self.queue = WorkQueue("disruption", base_delay=0.5, max_delay=30)
        self.pdbs.add_handler(self._on_pdb)
        self.pods.add_handler(self._on_pod)
        for inf in (self.replicasets, self.deployments, self.statefulsets):
            inf.add_handler(self._on_controller)

    def _key(self, obj: dict[str, Any]) -> str:
        return f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"

    def _on_pdb(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ != "DELETED":
            self.queue.add(self._key(new))

    def _matching_pdbs(self, ns: str | None, labels: dict[str, str]) -> list[dict[str, Any]]:
        return [p for p in self.pdbs.list(ns)
                if selectors.selector_matches((p.get("spec") or {}).get("selector"), labels)]

    def _on_pod(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        m = new["metadata"]
        for p in self._matching_pdbs(m.get("namespace"), m.get("labels") or {}):
            self.queue.add(self._key(p))

    def _on_controller(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        ns = new["metadata"].get("namespace")
        for p in self.pdbs.list(ns):
            self.queue.add(self._key(p))

    async def run(self, workers: int = 1) -> None:
        for inf in (self.pdbs, self.pods, self.replicasets, self.deployments, self.statefulsets):
            await inf.wait_synced()
        await run_workers(self.queue, self.reconcile, workers)

    # -- what a budget expects ------------------------------------------------
    async def _controller_scale(self, ns: str, ref: dict[str, Any]) -> tuple[str, int]:
        kind, name = ref.get("kind"), ref.get("name")
        if kind == "ReplicaSet":
            rs = self.replicasets.get(f"{ns}/{name}")
            if rs is not None:
                for owner in rs["metadata"].get("ownerReferences") or []:
                    if owner.get("controller") and owner.get("kind") == "Deployment":
                        dep = self.deployments.get(f"{ns}/{owner['name']}")
                        if dep is not None:
                            return dep["metadata"]["uid"], int((dep.get("spec") or {}).get("replicas", 1))
                return rs["metadata"]["uid"], int((rs.get("spec") or {}).get("replicas", 1))
        elif kind == "StatefulSet":
            sts = self.statefulsets.get(f"{ns}/{name}")
            if sts is not None:
                return sts["metadata"]["uid"], int((sts.get("spec") or {}).get("replicas", 1))
        elif kind == "ReplicationController":
            try:
                rc = await self.client.get(REPLICATIONCONTROLLERS, str(name), ns)
                return rc["metadata"]["uid"], int((rc.get("spec") or {}).get("replicas", 1))
            except errors.StatusError as e:
                if e.code != 404:
                    raise
        raise NoController(f"found no controllers for pod {name!r}")

    async def _expected_scale(self, ns: str, pods: list[dict[str, Any]]) -> int:
        scales: dict[str, int] = {}
        for pod in pods:
            ref = next((r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
            if ref is None:
                raise NoController(f"found no controller ref for pod {pod['metadata']['name']!r}")
            uid, scale = await self._controller_scale(ns, ref)
            scales[uid] = scale
        return sum(scales.values())

    # -- the sync -------------------------------------------------------------
    async def reconcile(self, key: str) -> None:
        pdb = self.pdbs.get(key)
        if pdb is None:
            return
        ns = pdb["metadata"].get("namespace") or "default"
        spec = pdb.get("spec") or {}
        sel = spec.get("selector")
        pods = [p for p in self.pods.list(ns)
                if sel and selectors.selector_matches(sel, p["metadata"].get("labels") or {})]
        try:
            if spec.get("maxUnavailable") is not None:
                expected = await self._expected_scale(ns, pods)
                desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
            elif isinstance(spec.get("minAvailable"), str):
                expected = await self._expected_scale(ns, pods)
                desired = _scaled(spec["minAvailable"], expected)
            else:
                expected = len(pods)
                desired = int(spec.get("minAvailable") or 0)
        except NoController as e:
            await self._write(pdb, self._status(pdb, 0, 0, 0, {}, failed=str(e)))
            return
        now = _dt.datetime.now(_dt.UTC)
        disrupted, recheck = self._disrupted(pdb, pods, now)
        healthy = sum(1 for p in pods if not meta.is_deleting(p) and p["metadata"]["name"] not in disrupted
                      and podutil.is_ready(p))
        await self._write(pdb, self._status(pdb, healthy, desired, expected, disrupted))
        if recheck is not None:
            self.queue.add_after(key, recheck)

    def _disrupted(self, pdb: dict[str, Any], pods: list[dict[str, Any]],
                   now: _dt.datetime) -> tuple[dict[str, str], float | None]:
        """buildDisruptedPodMap: granted evictions still pending, for at most DELETION_TIMEOUT."""
        by_name = {p["metadata"]["name"]: p for p in pods}
        out: dict[str, str] = {}
        recheck: float | None = None
        for name, when in ((pdb.get("status") or {}).get("disruptedPods") or {}).items():
            pod = by_name.get(name)
            if pod is None or meta.is_deleting(pod):
                continue
            left = DELETION_TIMEOUT - (now - meta.parse_time(when)).total_seconds()
            if left <= 0:
                continue
            out[name] = when
            recheck = left if recheck is None else min(recheck, left)
        return out, recheck

    @staticmethod
    def _status(pdb: dict[str, Any], healthy: int, desired: int, expected: int, disrupted: dict[str, str], *,
                failed: str = "") -> dict[str, Any]:
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0 or failed:
            allowed = 0
        gen = pdb["metadata"].get("generation", 1)
        if failed:
            cond = {"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed", "message": failed}
        elif allowed > 0:
            cond = {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods", "message": ""}
        else:
            cond = {"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods", "message": ""}
        old = next((c for c in (pdb.get("status") or {}).get("conditions") or []
                    if c.get("type") == "DisruptionAllowed"), None)
        same = old is not None and (old.get("status"), old.get("reason")) == (cond["status"], cond["reason"])
        cond["observedGeneration"] = gen
        cond["lastTransitionTime"] = old.get("lastTransitionTime") if same and old else meta.now()
        st: dict[str, Any] = {"observedGeneration": gen, "disruptionsAllowed": allowed, "currentHealthy": healthy,
                              "desiredHealthy": desired, "expectedPods": expected, "conditions": [cond]}
        if disrupted:
            st["disruptedPods"] = disrupted
        return st

    async def _write(self, pdb: dict[str, Any], status: dict[str, Any]) -> None:
        if (pdb.get("status") or {}) == status:
            return
        try:
            await self.client.update(PDBS, {**pdb, "status": status}, subresource="status")
        except errors.StatusError as e:
            if e.code == 409:
                self.queue.add_after(self._key(pdb), 0.2)
            elif e.code != 404:
                raise
