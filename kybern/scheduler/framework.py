"""The scheduling framework (upstream pkg/scheduler/framework): plugins at named
extension points, the per-cycle state they share, and the NodeInfo summary of a
node they judge.

    PreFilter(state, pod)            -> Status | None   (SKIP: drop my Filter)
    Filter(state, pod, node_info)    -> Status | None   (None = fits)
    PreScore(state, pod, nodes)      -> Status | None   (SKIP: drop my Score)
    Score(state, pod, node_info)     -> int             (0..100 after normalize)
    normalize(state, pod, scores)    -> None            (in place; optional)

None means success so that the hot path allocates nothing for a node that fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from kybern.scheduler.resources import Resources, amount, pod_requests

MAX_NODE_SCORE = 100

# Status codes (framework.Code)
SUCCESS = 0
ERROR = 1
UNSCHEDULABLE = 2
UNSCHEDULABLE_AND_UNRESOLVABLE = 3
SKIP = 5


class Status:
    __slots__ = ("code", "plugin", "reasons")

    def __init__(self, code: int, *reasons: str, plugin: str = "") -> None:
        self.code = code
        self.reasons = list(reasons)
        self.plugin = plugin

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def is_rejected(self) -> bool:
        return self.code in (UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE)

    def __repr__(self) -> str:
        return f"Status({self.code}, {self.reasons!r}, plugin={self.plugin!r})"


STATUS_SKIP = Status(SKIP)


class CycleState(dict[str, Any]):
    """Data one plugin computes in PreFilter/PreScore and reads in Filter/Score."""


SPREAD_OWNERS = frozenset({"ReplicaSet", "ReplicationController", "StatefulSet"})


class PodInfo:
    """A pod with what the plugins need precomputed once (not once per node)."""
    __slots__ = (
        "host_ports",
        "key",
        "labels",
        "namespace",
        "non_zero_cpu",
        "non_zero_mem",
        "owner_uid",
        "pod",
        "pod_affinity",
        "pod_anti_affinity",
        "priority",
        "request_items",
        "requests",
        "spread_by_default",
        "tolerations",
    )

    def __init__(self, pod: dict[str, Any]) -> None:
        m = pod["metadata"]
        spec = pod.get("spec") or {}
        self.pod = pod
        self.namespace = m.get("namespace") or ""
        self.key = f"{self.namespace}/{m['name']}"
        self.labels: dict[str, str] = m.get("labels") or {}
        self.requests: Resources = pod_requests(pod)
        self.request_items = tuple((k, v) for k, v in self.requests.items() if v > 0)
        nz = pod_requests(pod, non_zero=True)
        self.non_zero_cpu = nz.get("cpu", 0)
        self.non_zero_mem = nz.get("memory", 0)
        ref = next((r for r in m.get("ownerReferences") or [] if r.get("controller")), None)
        self.owner_uid: str | None = ref.get("uid") if ref else None
        self.host_ports: tuple[tuple[str, str, int], ...] | None = None  # NodePorts, computed when asked
        # upstream's default spreading selects a pod's siblings through the Services,
        # ReplicaSets, ReplicationControllers and StatefulSets selecting it (not Jobs,
        # DaemonSets): kybern counts pods of the same such controller
        self.spread_by_default = bool(ref) and ref.get("kind") in SPREAD_OWNERS
        self.priority = int(spec.get("priority") or 0)
        self.tolerations: list[dict[str, Any]] = spec.get("tolerations") or []
        aff = spec.get("affinity") or {}
        self.pod_affinity: dict[str, Any] = aff.get("podAffinity") or {}
        self.pod_anti_affinity: dict[str, Any] = aff.get("podAntiAffinity") or {}

    @property
    def spec(self) -> dict[str, Any]:
        return self.pod.get("spec") or {}

    @property
    def terminating(self) -> bool:
        return bool(self.pod["metadata"].get("deletionTimestamp"))


NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}


class NodeInfo:
    """A node and the pods assigned (or assumed) to it, with their summed requests."""
    __slots__ = (
        "affinity_pods",
        "alloc_cpu",
        "alloc_mem",
        "allocatable",
        "allowed_pods",
        "labels",
        "name",
        "node",
        "non_zero_cpu",
        "non_zero_mem",
        "owner_counts",
        "pods",
        "requested",
        "taints",
        "unschedulable",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.node: dict[str, Any] | None = None
        self.labels: dict[str, str] = {}
        self.taints: list[dict[str, Any]] = []
        self.unschedulable = False
        self.allocatable: Resources = {}
        self.alloc_cpu = 0
        self.alloc_mem = 0
        self.allowed_pods = 0
        self.pods: dict[str, PodInfo] = {}
        self.requested: Resources = {}
        self.non_zero_cpu = 0
        self.non_zero_mem = 0
        self.owner_counts: dict[str, int] = {}  # controller uid -> live pods here (spreading)
        # the pods with pod (anti)affinity (upstream PodsWithAffinity): InterPodAffinity
        # reads only these, so pods without any cost it nothing per cycle
        self.affinity_pods: dict[str, PodInfo] = {}

    def set_node(self, node: dict[str, Any]) -> None:
        self.node = node
        spec = node.get("spec") or {}
        st = node.get("status") or {}
        self.labels = node["metadata"].get("labels") or {}
        self.unschedulable = bool(spec.get("unschedulable"))
        taints = list(spec.get("taints") or [])
        # Ready semantics simplified: a node whose Ready condition is not True carries
        # the not-ready NoSchedule taint, as the node lifecycle controller would add.
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in st.get("conditions") or [])
        if not ready and not any(t.get("key") in ("node.kubernetes.io/not-ready",
                                                  "node.kubernetes.io/unreachable") for t in taints):
            taints.append(dict(NOT_READY_TAINT))
        self.taints = taints
        alloc = st.get("allocatable") or st.get("capacity") or {}
        self.allocatable = {k: amount(k, v) for k, v in alloc.items() if k != "pods"}
        self.allowed_pods = amount("pods", alloc.get("pods", 110))
        self.alloc_cpu = self.allocatable.get("cpu", 0)
        self.alloc_mem = self.allocatable.get("memory", 0)

    def clone(self) -> NodeInfo:
        """A copy whose pods can be added and removed (preemption's what-ifs)."""
        c = NodeInfo(self.name)
        c.node, c.labels, c.taints, c.unschedulable = self.node, self.labels, self.taints, self.unschedulable
        c.allocatable, c.alloc_cpu, c.alloc_mem = self.allocatable, self.alloc_cpu, self.alloc_mem
        c.allowed_pods = self.allowed_pods
        c.pods = dict(self.pods)
        c.requested = dict(self.requested)
        c.non_zero_cpu, c.non_zero_mem = self.non_zero_cpu, self.non_zero_mem
        c.owner_counts = dict(self.owner_counts)
        c.affinity_pods = dict(self.affinity_pods)
        return c

    def add_pod(self, pi: PodInfo) -> None:
        if pi.key in self.pods:
            self.remove_pod(pi.key)
        self.pods[pi.key] = pi
        for k, v in pi.requests.items():
            self.requested[k] = self.requested.get(k, 0) + v
        self.non_zero_cpu += pi.non_zero_cpu
        self.non_zero_mem += pi.non_zero_mem
        if pi.owner_uid and not pi.terminating:
            self.owner_counts[pi.owner_uid] = self.owner_counts.get(pi.owner_uid, 0) + 1
        if pi.pod_affinity or pi.pod_anti_affinity:
            self.affinity_pods[pi.key] = pi

    def remove_pod(self, key: str) -> PodInfo | None:
        pi = self.pods.pop(key, None)
        if pi is None:
            return None
        for k, v in pi.requests.items():
            self.requested[k] = self.requested.get(k, 0) - v
        self.non_zero_cpu -= pi.non_zero_cpu
        self.non_zero_mem -= pi.non_zero_mem
        if pi.owner_uid and not pi.terminating:
            n = self.owner_counts.get(pi.owner_uid, 0) - 1
            if n > 0:
                self.owner_counts[pi.owner_uid] = n
            else:
                self.owner_counts.pop(pi.owner_uid, None)
        self.affinity_pods.pop(key, None)
        return pi


# -- plugin protocols ------------------------------------------------------------------
@runtime_checkable
class PreFilterPlugin(Protocol):
    name: str

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None: ...


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None: ...


@runtime_checkable
class PreScorePlugin(Protocol):
    name: str

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None: ...


@runtime_checkable
class ScorePlugin(Protocol):
    name: str
    weight: int

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int: ...


def default_normalize(scores: list[int], reverse: bool = False) -> None:
    """framework helper.DefaultNormalizeScore."""
    top = max(scores, default=0)
    if top == 0:
        if reverse:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
        return
    for i, s in enumerate(scores):
        v = MAX_NODE_SCORE * s // top
        scores[i] = MAX_NODE_SCORE - v if reverse else v


@dataclass
class Framework:
    """The configured plugins, run at their extension points."""
    plugins: list[Any]
    pre_filters: list[Any] = field(init=False)
    filters: list[Any] = field(init=False)
    pre_scores: list[Any] = field(init=False)
    scorers: list[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.pre_filters = [p for p in self.plugins if hasattr(p, "pre_filter")]
        self.filters = [p for p in self.plugins if hasattr(p, "filter")]
        self.pre_scores = [p for p in self.plugins if hasattr(p, "pre_score")]
        self.scorers = [p for p in self.plugins if hasattr(p, "score")]

    def run_pre_filter(self, state: CycleState, pod: PodInfo) -> tuple[Status | None, list[Any]]:
        """(a rejecting status or None, the filter plugins to run this cycle)."""
        skipped: set[str] = set()
        for p in self.pre_filters:
            st = p.pre_filter(state, pod)
            if st is None:
                continue
            if st.code == SKIP:
                skipped.add(p.name)
                continue
            st.plugin = p.name
            return st, []
        return None, [f for f in self.filters if f.name not in skipped]

    @staticmethod
    def run_filters(filters: list[Any], state: CycleState, pod: PodInfo,
                    node: NodeInfo) -> Status | None:
        for f in filters:
            st = f.filter(state, pod, node)
            if st is not None:
                return st
        return None

    # ScorePlugin may also define score_nodes(state, pod, nodes) -> list[int]: same result
    # as calling score() per node, without a Python call per node.
    def run_scores(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        """Weighted sum of every active score plugin per node (same order as nodes)."""
        totals = [0] * len(nodes)
        state["scored_nodes"] = nodes
        skipped: set[str] = set()
        for p in self.pre_scores:
            st = p.pre_score(state, pod, nodes)
            if st is not None and st.code == SKIP:
                skipped.add(p.name)
        for p in self.scorers:
            if p.name in skipped:
                continue
            batch = getattr(p, "score_nodes", None)
            if batch is not None:  # plugins on the hot path score all nodes in one call
                scores = batch(state, pod, nodes)
            else:
                scores = [p.score(state, pod, n) for n in nodes]
            norm = getattr(p, "normalize", None)
            if norm is not None:
                norm(state, pod, scores)
            w = p.weight
            for i, s in enumerate(scores):
                totals[i] += s * w
        return totals


# -- the failure message ---------------------------------------------------------------
def fit_error_message(num_nodes: int, statuses: dict[str, Status], *,
                      pre_filter_msg: str = "", post_filter_msg: str = "") -> str:
    """framework.FitError.Error(): '0/N nodes are available: <count reason>, ... .'
    then the PostFilter (preemption) message."""
    msg = f"0/{num_nodes} nodes are available:"
    if pre_filter_msg:
        msg += f" {pre_filter_msg}."
    else:
        counts: dict[str, int] = {}
        for st in statuses.values():
            for r in st.reasons:
                counts[r] = counts.get(r, 0) + 1
        parts = sorted(f"{v} {k}" for k, v in counts.items())
        if parts:
            msg += f" {', '.join(parts)}."
    if post_filter_msg:
        msg += f" {post_filter_msg}"
    return msg
