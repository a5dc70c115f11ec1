"""Node lifecycle (upstream pkg/controller/nodelifecycle and the NoExecute taint
manager): notices nodes whose agent went quiet, taints nodes by condition, and
evicts pods from nodes they do not tolerate.

Every `period` seconds, and at once when a node's change calls for new taints or
brings a NoExecute taint (cordon, uncordon, `kubectl taint`):
- **health**: a node is heard from when its Lease (kube-node-lease/<node>) is
  renewed or its Ready condition's heartbeat moves. Silent for longer than
  `grace` (node-monitor-grace-period, 40 s; env KYBERN_NODE_MONITOR_GRACE_PERIOD;
  60 s, the startup grace, for a node that never posted a Ready condition, which has
  no condition taint meanwhile, e.g. a Node created by hand)
  -> its Ready, MemoryPressure, DiskPressure and PIDPressure conditions become
  Unknown ("Kubelet stopped posting node status."), event `NodeNotReady`, and its
  pods get Ready=False (event `NodeNotReady` "Node is not ready"). The agent's
  next status post brings it back.
- **taints** follow conditions: Ready Unknown -> node.kubernetes.io/unreachable,
  Ready False -> node.kubernetes.io/not-ready (both NoSchedule and NoExecute with
  timeAdded), MemoryPressure/DiskPressure/PIDPressure/NetworkUnavailable ->
  their NoSchedule taints, spec.unschedulable -> node.kubernetes.io/unschedulable.
- **eviction**: a pod on a node with NoExecute taints it does not tolerate is
  deleted at once; one that tolerates them for tolerationSeconds is deleted when
  that time has passed since the taint's timeAdded, or since it was first seen
  for a taint without one (as `kubectl taint` adds them) (pods get 300 s for
  not-ready/unreachable from the DefaultTolerationSeconds defaults). It gets a
  DisruptionTarget condition (DeletionByTaintManager) and a `TaintManagerEviction`
  event first ("Marking for deletion Pod ns/name"); a pod whose eviction was waiting
  gets "Cancelling deletion of Pod ns/name" when the taint goes (or the pod does).
  Both come from `taint-eviction-controller`, as upstream's separate controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import os
import time
from typing import Any

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import LEASES, NODES, PODS
from kybern.machinery import errors, meta
from kybern.machinery.taints import tolerates

log = logging.getLogger(__name__)

GRACE_ENV = "KYBERN_NODE_MONITOR_GRACE_PERIOD"
DEFAULT_GRACE = 40.0  # upstream --node-monitor-grace-period
DEFAULT_PERIOD = 5.0  # upstream --node-monitor-period
STARTUP_GRACE = 60.0  # upstream --node-startup-grace-period: for a node that never posted its status
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
PRESSURE_TAINTS = {"MemoryPressure": "node.kubernetes.io/memory-pressure",
                   "DiskPressure": "node.kubernetes.io/disk-pressure",
                   "PIDPressure": "node.kubernetes.io/pid-pressure",
                   "NetworkUnavailable": "node.kubernetes.io/network-unavailable"}
MANAGED = {UNREACHABLE, NOT_READY, UNSCHEDULABLE, *PRESSURE_TAINTS.values()}


def condition(node: dict[str, Any], typ: str) -> dict[str, Any] | None:
    return next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == typ), None)


def desired_taints(node: dict[str, Any], now: str) -> list[dict[str, Any]]:
    """The node's taints with the managed ones recomputed from its conditions
    (existing ones keep their timeAdded)."""
    # a node that never posted a Ready condition gets no taint for it (upstream maps only
    # the conditions there are) until the startup grace marks it Unknown
    ready = (condition(node, "Ready") or {}).get("status")
    want: list[tuple[str, str]] = []
    if ready == "Unknown":
        want += [(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]
    elif ready == "False":
        want += [(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]
    for typ, key in PRESSURE_TAINTS.items():
        if (condition(node, typ) or {}).get("status") == "True":
            want.append((key, "NoSchedule"))
    if (node.get("spec") or {}).get("unschedulable"):
        want.append((UNSCHEDULABLE, "NoSchedule"))
    have = list((node.get("spec") or {}).get("taints") or [])
    out = [t for t in have if t.get("key") not in MANAGED or (t.get("key"), t.get("effect")) in want]
    for key, effect in want:
        if not any(t.get("key") == key and t.get("effect") == effect for t in out):
            t = {"key": key, "effect": effect}
            if effect == "NoExecute":
                t["timeAdded"] = now
            out.append(t)
    return out


def eviction_time(pod: dict[str, Any], taints: list[dict[str, Any]],
                  first_seen: dict[tuple[str, str, str], float] | None = None) -> float | None:
    """When (epoch seconds) the NoExecute taints evict this pod; None if never.
    tolerationSeconds count from the taint's timeAdded or, for a taint without one
    (`kubectl taint` sets none), from when the controller first saw it
    (`first_seen`, keyed by (key, value, effect)), as upstream's taint manager."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    when: float | None = None
    for t in taints:
        if t.get("effect") != "NoExecute":
            continue
        used = [tol for tol in tolerations if tolerates(tol, t)]
        if not used:
            return 0.0
        secs = [tol.get("tolerationSeconds") for tol in used]
        if any(s is None for s in secs):
            continue  # tolerated forever
        added = _epoch(t.get("timeAdded")) or (first_seen or {}).get(_taint_id(t)) or time.time()
        at = added + max(0, min(int(s) for s in secs if s is not None))
        when = at if when is None else min(when, at)
    return when


def _no_execute(taints: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [_taint_id(t) for t in taints if t.get("effect") == "NoExecute"]


def _taint_id(t: dict[str, Any]) -> tuple[str, str, str]:
    return (t.get("key") or "", t.get("value") or "", t.get("effect") or "")


def _epoch(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return _dt.datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


class NodeLifecycleController:
    name = "nodelifecycle"

    def __init__(self, client: Client, informers: InformerFactory, *, grace: float | None = None,
                 period: float | None = None) -> None:
        self.client = client
        self.grace = grace if grace is not None else float(os.environ.get(GRACE_ENV) or DEFAULT_GRACE)
        self.period = period if period is not None else min(DEFAULT_PERIOD, max(self.grace / 4, 0.5))
        self.nodes = informers.informer(NODES)
        self.pods = informers.informer(PODS)
        self.leases = informers.informer(LEASES)
        self.recorder = EventRecorder(client, "node-controller")
        # NoExecute evictions are upstream's taint-eviction-controller's (its own events' source)
        self.eviction_recorder = EventRecorder(client, "taint-eviction-controller")
        self._scheduled: set[str] = set()  # pods whose eviction waits for tolerationSeconds
        self._heard: dict[str, tuple[Any, Any, float]] = {}  # node -> (heartbeat, renewTime, when heard)
        self._ready: dict[str, str] = {}  # node -> Ready status last seen
        self._evicted: set[str] = set()
        # node -> NoExecute taint (key, value, effect) -> when first seen (taints without timeAdded)
        self._taints_seen: dict[str, dict[tuple[str, str, str], float]] = {}
        # a node change that needs a pass now (cordon, uncordon, a NoExecute taint): as
        # upstream's event-driven tainting, not up to `period` later
        self._kick = asyncio.Event()
        self.nodes.add_handler(self._on_node)

    def _on_node(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ == "DELETED":
            return
        taints = (new.get("spec") or {}).get("taints") or []
        old_taints = ((old or {}).get("spec") or {}).get("taints") or []
        if desired_taints(new, "") != taints or _no_execute(taints) != _no_execute(old_taints):
            self._kick.set()

    async def run(self) -> None:
        await asyncio.gather(self.nodes.wait_synced(), self.pods.wait_synced(), self.leases.wait_synced())
        while True:
            self._kick.clear()  # a change seen from here on calls for another pass
            for step in (self.monitor_once, self.evict_once):
                try:
                    await step()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("node lifecycle: %s failed", step.__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.period)

    # -- health and taints ----------------------------------------------------
    async def monitor_once(self) -> None:
        now = time.monotonic()
        for node in self.nodes.list():
            name = node["metadata"]["name"]
            ready = condition(node, "Ready")
            lease = self.leases.get(f"kube-node-lease/{name}")
            stamp = ((ready or {}).get("lastHeartbeatTime"), ((lease or {}).get("spec") or {}).get("renewTime"))
            prev = self._heard.get(name)
            if prev is None:  # first seen by this controller (upstream: at its start, or the node's creation)
                self.recorder.event(node, "Normal", "RegisteredNode",
                                    f"Node {name} event: Registered Node {name} in Controller")
            heard = now if prev is None or prev[:2] != stamp else prev[2]
            self._heard[name] = (*stamp, heard)
            grace = self.grace if ready is not None else max(self.grace, STARTUP_GRACE)
            if now - heard > grace and (ready or {}).get("status") != "Unknown":
                node = await self._mark_unknown(node) or node
            status = (condition(node, "Ready") or {}).get("status", "Unknown")
            if self._ready.get(name) == "True" and status != "True":
                self.recorder.event(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
                await self._mark_pods_not_ready(name)
            self._ready[name] = status
            await self._sync_taints(node)
        for gone in set(self._heard) - {n["metadata"]["name"] for n in self.nodes.list()}:
            self._heard.pop(gone, None)
            self._ready.pop(gone, None)

    async def _mark_unknown(self, node: dict[str, Any]) -> dict[str, Any] | None:
        now = meta.now()
        conds = [dict(c) for c in (node.get("status") or {}).get("conditions") or []]
        for typ in NODE_CONDITIONS:
            c = next((c for c in conds if c.get("type") == typ), None)
            if c is None:
                conds.append({"type": typ, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                              "message": "Kubelet never posted node status.",
                              "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                              "lastTransitionTime": now})
            elif c.get("status") != "Unknown":
                c.update(status="Unknown", reason="NodeStatusUnknown",
                         message="Kubelet stopped posting node status.", lastTransitionTime=now)
        log.info("node %s: no heartbeat for %.0fs; marking it Unknown", node["metadata"]["name"], self.grace)
        try:
            return await self.client.patch(NODES, node["metadata"]["name"], {"status": {"conditions": conds}},
                                           subresource="status")
        except errors.StatusError as e:
            log.warning("node lifecycle: cannot update node %s: %s", node["metadata"]["name"], e)
            return None

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        for pod in self.pods.list():
            if (pod.get("spec") or {}).get("nodeName") != node_name:
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            cond = {"type": "Ready", "status": "False", "lastTransitionTime": meta.now()}
            m = pod["metadata"]
            try:
                await self.client.patch(PODS, m["name"], {"status": {"conditions": [cond]}}, m.get("namespace"),
                                        patch_type="strategic", subresource="status")
                self.recorder.event(pod, "Warning", "NodeNotReady", "Node is not ready")
            except errors.StatusError as e:
                log.debug("node lifecycle: cannot mark pod %s not ready: %s", m["name"], e)

    async def _sync_taints(self, node: dict[str, Any]) -> None:
        want = desired_taints(node, meta.now())
        have = (node.get("spec") or {}).get("taints") or []
        if want == have:
            return
        new = dict(node, spec=dict(node.get("spec") or {}, taints=want or None))
        if not want:
            new["spec"].pop("taints", None)
        try:
            await self.client.update(NODES, new)
        except errors.StatusError as e:
            if e.code not in (404, 409):  # a newer node: next pass
                raise

    # -- NoExecute eviction ---------------------------------------------------
    def _note_taints(self, now: float) -> None:
        """Remember when each NoExecute taint was first seen on its node."""
        seen: dict[str, dict[tuple[str, str, str], float]] = {}
        for node in self.nodes.list():
            name = node["metadata"]["name"]
            prev = self._taints_seen.get(name) or {}
            cur = {_taint_id(t): prev.get(_taint_id(t), now)
                   for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"}
            if cur:
                seen[name] = cur
        self._taints_seen = seen

    async def evict_once(self) -> None:
        now = time.time()
        self._note_taints(now)
        scheduled: set[str] = set()
        for pod in self.pods.list():
            m, spec = pod["metadata"], pod.get("spec") or {}
            key = f"{m.get('namespace')}/{m['name']}"
            if meta.is_deleting(pod) and key in self._scheduled:
                scheduled.add(key)  # going anyway; upstream cancels once it is gone
                continue
            node = self.nodes.get(spec.get("nodeName") or "") if spec.get("nodeName") else None
            if node is None or meta.is_deleting(pod) or m.get("uid") in self._evicted:
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            at = eviction_time(pod, (node.get("spec") or {}).get("taints") or [],
                               self._taints_seen.get(spec["nodeName"]))
            if at is not None and at <= now:
                self._scheduled.discard(key)
                await self._evict(pod)
            elif at is not None:
                scheduled.add(key)
        for key in self._scheduled - scheduled:  # taint gone, tolerated for good, or pod gone
            ns, _, name = key.partition("/")
            self.eviction_recorder.event({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}},
                                         "Normal", "TaintManagerEviction", f"Cancelling deletion of Pod {key}")
        self._scheduled = scheduled

    async def _evict(self, pod: dict[str, Any]) -> None:
        m = pod["metadata"]
        ns = m.get("namespace")
        self._evicted.add(m["uid"])
        if len(self._evicted) > 10_000:
            self._evicted.clear()
        self.eviction_recorder.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {ns}/{m['name']}")
        cond = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": meta.now()}
        try:
            await self.client.patch(PODS, m["name"], {"status": {"conditions": [cond]}}, ns,
                                    patch_type="strategic", subresource="status")
            await self.client.delete(PODS, m["name"], ns, preconditions={"uid": m["uid"]})
        except errors.StatusError as e:
            if e.code not in (404, 409):
                self._evicted.discard(m["uid"])
                raise
