"""kube-scheduler: take pending pods that name this scheduler, one at a time,
filter the nodes they fit, score the fitting ones, and bind the pod to the best
by POSTing a Binding; say why in an event when nothing fits, and retry when the
cluster changes.

The scheduling cycle is synchronous CPU work on cached state (nothing awaits
inside it); binding is asynchronous and concurrent: the pod is *assumed* onto its
node in the cache first so the next cycle already sees the capacity it took.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import (
    NAMESPACES,
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    PODS,
)
from kybern.machinery import errors, meta
from kybern.scheduler import preemption
from kybern.scheduler.cache import Cache
from kybern.scheduler.framework import (
    CycleState,
    Framework,
    NodeInfo,
    PodInfo,
    Status,
    fit_error_message,
)
from kybern.scheduler.plugins import default_plugins
from kybern.scheduler.queue import QueuedPod, SchedulingQueue

log = logging.getLogger(__name__)

NO_NODES = "no nodes available to schedule pods"
# failures another pod's arrival can cure (upstream: AssignedPodAdd queueing hints)
WAITS_FOR_PODS = ("didn't match pod affinity rules", "didn't match pod topology spread constraints")


MAX_NODES_TO_SCORE = 100
"""kybern's default cap on feasible nodes per cycle. Upstream's adaptive percentage
finds 420 of 1,000 nodes; in Python each scored node costs microseconds, so by
default we stop at upstream's own floor (100) and rely on the round-robin start
to spread pods over the whole cluster. Scheduler(max_nodes_to_score=None) gives
upstream's exact behaviour."""


def num_feasible_nodes_to_find(num_nodes: int, cap: int | None = None) -> int:
    """percentageOfNodesToScore, adaptive: stop filtering after this many fits
    (all nodes under 100; 42% of 1,000; never under 100 nor 5%), then `cap`."""
    if num_nodes < 100:
        n = num_nodes
    else:
        pct = 50 - num_nodes // 125
        pct = max(pct, 5)
        n = max(num_nodes * pct // 100, 100)
    return min(n, cap) if cap else n


def _scheduling_relevant(node: dict[str, Any]) -> tuple[Any, ...]:
    """The parts of a Node whose change may make a pending pod fit (heartbeats do not)."""
    st = node.get("status") or {}
    ready = next((c.get("status") for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
    spec = node.get("spec") or {}
    return (node["metadata"].get("labels"), spec.get("taints"), spec.get("unschedulable"),
            st.get("allocatable"), ready)


def _pod_spec_view(pod: dict[str, Any]) -> tuple[Any, ...]:
    m = pod["metadata"]
    return (pod.get("spec"), m.get("labels"), m.get("annotations"), m.get("deletionTimestamp"))


class Scheduler:
    def __init__(self, client: Client, *, name: str = "default-scheduler",
                 plugins: list[Any] | None = None, bind_concurrency: int = 64,
                 max_nodes_to_score: int | None = MAX_NODES_TO_SCORE,
                 informers: InformerFactory | None = None) -> None:
        """`informers`: a factory shared with the controllers of the same process
        (its owner stops it); by default the scheduler has its own."""
        self.client = client
        self.name = name
        self.framework = Framework(plugins if plugins is not None else default_plugins())
        self.max_nodes_to_score = max_nodes_to_score
        self.cache = Cache()
        self.queue = SchedulingQueue()
        self.recorder = EventRecorder(client, name)
        self._shared = informers is not None
        self._next_start = 0
        self.nominator = preemption.Nominator()
        self._nominations: dict[str, str | None] = {}  # pod key -> nominatedNodeName to write (None: clear)
        self.preempted = 0  # victims deleted (tests, benchmarks)
        self._bind_slots = asyncio.Semaphore(bind_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.scheduled = 0  # counters for benchmarks and tests
        self.failed = 0
        self.factory = informers if informers is not None else InformerFactory(client)
        with self.factory.recording() as self._registered:
            self.pod_informer = self.factory.informer(PODS)
            self.node_informer = self.factory.informer(NODES)
            # what plugins read besides pods and nodes (VolumeZone, InterPodAffinity)
            self.informers = {r.plural: self.factory.informer(r)
                              for r in (PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, NAMESPACES)}
            self.pdb_informer = self.factory.informer(preemption.PDBS)  # preemption's victims
            for p in self.framework.plugins:
                if hasattr(p, "set_informers"):
                    p.set_informers(self.informers)
            # handlers last: a shared factory that has already synced (a scheduler started
            # late, after winning its Lease, or again after a crash) replays its objects into
            # them at once, so everything they use must exist by now
            self.node_informer.add_handler(self._on_node)
            for inf in self.informers.values():
                inf.add_handler(self._on_other)
            self.pod_informer.add_handler(self._on_pod)

    # -- informer events ----------------------------------------------------------
    def _on_node(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ == "DELETED":
            self.cache.remove_node(new["metadata"]["name"])
            return
        self.cache.set_node(new)
        if old is None or _scheduling_relevant(old) != _scheduling_relevant(new):
            self.queue.move_all()

    def _on_other(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """A claim bound, a volume or namespace relabelled: pending pods may fit now."""
        if old is None or typ == "DELETED" or old.get("spec") != new.get("spec") \
                or old["metadata"].get("labels") != new["metadata"].get("labels"):
            self.queue.move_all()

    def _on_pod(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        key = key_of(new)
        node = (new.get("spec") or {}).get("nodeName")
        if typ == "DELETED":
            self.queue.delete(key)
            self.nominator.remove(key)
            if node or self.cache.is_assumed(key):
                self.cache.remove_pod(key)
                self.queue.move_all()  # capacity freed
            return
        if node:
            self.queue.delete(key)
            self.nominator.remove(key)
            if new.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                self.cache.remove_pod(key)  # finished pods hold no resources
                self.queue.move_all()
                return
            unchanged = (old is not None and (old.get("spec") or {}).get("nodeName") == node
                         and old["metadata"].get("deletionTimestamp") == new["metadata"].get("deletionTimestamp")
                         and not self.cache.is_assumed(key))
            if not unchanged:
                self.cache.confirm(PodInfo(new), node)
            if old is None or (old.get("spec") or {}).get("nodeName") != node \
                    or old["metadata"].get("labels") != new["metadata"].get("labels"):
                self.queue.move_pod_waiters()  # pod affinity / spread may be satisfied now
            return
        if ((new.get("spec") or {}).get("schedulerName") or "default-scheduler") != self.name:
            return
        if meta.is_deleting(new) or new.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            self.queue.delete(key)
            self.nominator.remove(key)
            return
        if (new.get("spec") or {}).get("schedulingGates"):
            self.queue.delete(key)  # SchedulingGates (PreEnqueue): not tried until its gates are removed
            return
        nominated = (new.get("status") or {}).get("nominatedNodeName")
        if nominated and self.nominator.node_of.get(key) != nominated:
            self.nominator.add(PodInfo(new), nominated)  # another scheduler instance's, or ours before a restart
        if self.cache.is_assumed(key):
            return  # our binding is in flight
        if old is not None and self.queue.contains(key) and _pod_spec_view(old) == _pod_spec_view(new):
            return  # a status-only change (often our own condition): nothing to retry for
        self.queue.add(PodInfo(new))

    # -- the loop -----------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        tasks: list[asyncio.Task[None]] = []
        try:
            self.factory.start()
            await self.factory.wait_synced()
            tasks = [asyncio.create_task(self._flush_periodically()), asyncio.create_task(self._loop())]
            if stop is None:
                await tasks[1]
            else:
                await stop.wait()
        finally:
            for t in (*tasks, *self._tasks):
                t.cancel()
            await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
            await self.factory.release(self._registered, shared=self._shared)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(5)
            self.queue.periodic_flush()

    async def _loop(self) -> None:
        while True:
            qp = await self.queue.pop()
            try:
                self.schedule_one(qp)
            except Exception:
                log.exception("scheduling %s failed", qp.key)
                self.queue.requeue_failed(qp, self.queue.cycle, error=True)
            await asyncio.sleep(0)  # let informers and bindings run between cycles

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- one cycle ----------------------------------------------------------------
    def schedule_one(self, qp: QueuedPod) -> str | None:
        """Pick a node for the pod and start binding it; None if nothing fits."""
        live = self.pod_informer.get(qp.key)
        if live is None or (live.get("spec") or {}).get("nodeName") or meta.is_deleting(live):
            self.queue.done(qp.key)
            self.queue.delete(qp.key)
            return None
        cycle = self.queue.cycle
        pi = qp.info
        nodes = self.cache.node_list()
        if not nodes:
            self._fail(qp, cycle, NO_NODES)
            return None
        host, message = self.find_host(pi, nodes)
        if host is None:
            self._fail(qp, cycle, message)
            return None
        self.cache.assume(pi, host)
        self._spawn(self._bind(qp, host, cycle))
        return host

    def find_host(self, pi: PodInfo, nodes: list[NodeInfo]) -> tuple[str | None, str]:
        """(node name, "") or (None, the FailedScheduling message). Pure on the cache,
        except that a preemption (when nothing fits) nominates the pod and starts
        deleting its victims."""
        state = CycleState(all_nodes=nodes, affinity_nodes=self.cache.nodes_with_affinity())
        st, filters = self.framework.run_pre_filter(state, pi)
        if st is not None:
            statuses = {n.name: st for n in nodes}
            return None, fit_error_message(len(nodes), statuses, pre_filter_msg=st.message,
                                           post_filter_msg=self._post_filter(pi, nodes, statuses, state, []))
        nominated = self.nominator.node_of.get(pi.key)
        if nominated is not None:  # evaluateNominatedNode: the node its preemption freed, first
            ni = self.cache.nodes.get(nominated)
            if ni is not None and ni.node is not None and \
                    self.framework.run_filters(filters, state, pi, self.nominator.holding(pi, ni)) is None:
                return nominated, ""
        feasible, statuses = self._find_feasible(state, pi, nodes, filters)
        if not feasible:
            return None, fit_error_message(len(nodes), statuses,
                                           post_filter_msg=self._post_filter(pi, nodes, statuses, state, filters))
        if len(feasible) == 1:
            return feasible[0].name, ""
        totals = self.framework.run_scores(state, pi, feasible)
        return _select(feasible, totals), ""

    def _post_filter(self, pi: PodInfo, nodes: list[NodeInfo], statuses: dict[str, Status],
                     state: CycleState, filters: list[Any]) -> str:
        """DefaultPreemption: "" when victims were chosen (the pod is nominated to their
        node), else the "preemption: ..." part of the FailedScheduling message."""
        chosen, message = preemption.preempt(pi, nodes, statuses, state, filters, self.framework.run_filters,
                                             self.nominator, self.pdb_informer.list())
        if chosen is None:
            if pi.key in self.nominator.node_of and not message.startswith("preemption: not eligible"):
                self.nominator.remove(pi.key)
                self._nominations[pi.key] = None  # clear status.nominatedNodeName with the condition
            return message
        self.nominator.add(pi, chosen.node)
        self._nominations[pi.key] = chosen.node
        for p in list((self.nominator.by_node.get(chosen.node) or {}).values()):
            if p.priority < pi.priority:  # lower-priority pods nominated there may no longer fit
                self.nominator.remove(p.key)
                self._spawn(self._clear_nomination(p.pod))
        for v in chosen.victims:
            self._spawn(self._preempt_victim(v.pod, pi.pod, chosen.node))
        return ""

    def _find_feasible(self, state: CycleState, pi: PodInfo, nodes: list[NodeInfo],
                       filters: list[Any]) -> tuple[list[NodeInfo], dict[str, Status]]:
        n = len(nodes)
        want = num_feasible_nodes_to_find(n, self.max_nodes_to_score)
        start = self._next_start % n
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        run = self.framework.run_filters
        processed = n
        held = self.nominator.holding if self.nominator.by_node else None  # pods nominated by preemption
        for i in range(n):
            ni = nodes[(start + i) % n]
            st = run(filters, state, pi, ni if held is None else held(pi, ni))
            if st is None:
                feasible.append(ni)
                if len(feasible) >= want:
                    processed = i + 1
                    break
            else:
                statuses[ni.name] = st
        self._next_start = (start + processed) % n
        return feasible, statuses

    # -- outcomes -----------------------------------------------------------------
    async def _bind(self, qp: QueuedPod, node: str, cycle: int) -> None:
        pod = qp.info.pod
        m = pod["metadata"]
        ns, name = m.get("namespace"), m["name"]
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": name, "namespace": ns, "uid": m.get("uid")},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            async with self._bind_slots:
                await self.client.create(PODS, binding, ns, subresource="binding", name=name)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure: forget and retry
            self.cache.forget(qp.key)
            self.queue.move_all()  # the capacity it held is free again
            if isinstance(e, errors.StatusError) and e.code == 404:
                self.queue.delete(qp.key)
                return
            msg = e.message if isinstance(e, errors.StatusError) else str(e)
            self.recorder.event(pod, "Warning", "FailedScheduling", f"Binding rejected: {msg}")
            self.queue.requeue_failed(qp, cycle, error=True)
            return
        self.scheduled += 1
        self.recorder.event(pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}")
        self.queue.done(qp.key)

    def _fail(self, qp: QueuedPod, cycle: int, message: str) -> None:
        self.failed += 1
        pod = self.pod_informer.get(qp.key) or qp.info.pod
        self.recorder.event(pod, "Warning", "FailedScheduling", message)
        nomination = self._nominations.pop(qp.key, "")
        self._spawn(self._set_unschedulable(pod, message, nomination))
        self.queue.requeue_failed(qp, cycle, waits_for_pods=any(r in message for r in WAITS_FOR_PODS))

    async def _set_unschedulable(self, pod: dict[str, Any], message: str, nomination: str | None = "") -> None:
        """PodScheduled=False, reason Unschedulable, on the status subresource, with
        status.nominatedNodeName when a preemption nominated the pod (None: cleared)."""
        conds = (pod.get("status") or {}).get("conditions") or []
        cur = next((c for c in conds if c.get("type") == "PodScheduled"), None)
        if cur is not None and cur.get("status") == "False" and cur.get("reason") == "Unschedulable" \
                and cur.get("message") == message and nomination == "":
            return
        cond = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                "lastTransitionTime": cur.get("lastTransitionTime") if cur is not None
                and cur.get("status") == "False" else meta.now(),
                "reason": "Unschedulable", "message": message}
        new_conds = [c for c in conds if c.get("type") != "PodScheduled"] + [cond]
        m = pod["metadata"]
        status: dict[str, Any] = {"conditions": new_conds}
        if nomination != "":
            status["nominatedNodeName"] = nomination
        try:
            await self.client.patch(PODS, m["name"], {"status": status}, m.get("namespace"), subresource="status")
        except errors.StatusError as e:
            log.debug("cannot mark %s/%s unschedulable: %s", m.get("namespace"), m["name"], e)

    async def _clear_nomination(self, pod: dict[str, Any]) -> None:
        m = pod["metadata"]
        try:
            await self.client.patch(PODS, m["name"], {"status": {"nominatedNodeName": None}}, m.get("namespace"),
                                    subresource="status")
        except errors.StatusError as e:
            log.debug("cannot clear the nomination of %s/%s: %s", m.get("namespace"), m["name"], e)

    async def _preempt_victim(self, victim: dict[str, Any], preemptor: dict[str, Any], node: str) -> None:
        """DisruptionTarget condition, then delete (its grace period applies), then the
        `Preempted` event, as upstream's prepareCandidate."""
        m = victim["metadata"]
        ns, name = m.get("namespace"), m["name"]
        cond = {"type": "DisruptionTarget", "status": "True", "lastTransitionTime": meta.now(),
                "reason": "PreemptionByScheduler",
                "message": f"{self.name}: preempting to accommodate a higher priority pod"}
        try:  # a strategic merge: conditions merge by type, the kubelet's stay as they are
            await self.client.patch(PODS, name, {"status": {"conditions": [cond]}}, ns, patch_type="strategic",
                                    subresource="status")
            await self.client.delete(PODS, name, ns)
        except errors.StatusError as e:
            if e.code != 404:
                log.warning("cannot preempt %s/%s: %s", ns, name, e)
            return
        except OSError as e:  # the API unreachable: the next cycle tries again
            log.warning("cannot preempt %s/%s: %s", ns, name, e)
            return
        self.preempted += 1
        self.recorder.event(victim, "Normal", "Preempted",
                            f"Preempted by pod {preemptor['metadata'].get('uid')} on node {node}",
                            related=preemptor, action="Preempting")


def _select(nodes: list[NodeInfo], totals: list[int]) -> str:
    """Highest total; ties broken uniformly at random (as upstream's reservoir
    sampling, with one random draw instead of one per tie)."""
    best = max(totals)
    ties = [i for i, t in enumerate(totals) if t == best]
    return nodes[ties[0] if len(ties) == 1 else random.choice(ties)].name


async def run_scheduler(client: Client, *, name: str = "default-scheduler",
                        stop: asyncio.Event | None = None, informers: InformerFactory | None = None) -> None:
    """Run a scheduler named `name` until `stop` is set or the task is cancelled
    (`informers`: shared with the controllers of this process, see Scheduler)."""
    await Scheduler(client, name=name, informers=informers).run(stop)
