"""InterPodAffinity (upstream pkg/scheduler/framework/plugins/interpodaffinity):
place a pod near, or away from, pods with given labels in a topology domain.

Filter (required terms):
- the pod's podAffinity terms: every term's topology domain of the node must
  hold a pod matching all terms — "node(s) didn't match pod affinity rules";
  except the first pod of a group: when no pod anywhere matches and the pod
  matches its own terms, any node carrying the topology keys will do;
- the pod's podAntiAffinity terms: no matching pod in the node's domain —
  "node(s) didn't match pod anti-affinity rules";
- symmetry: no existing pod whose anti-affinity term matches this pod in the
  node's domain — "node(s) didn't satisfy existing pods anti-affinity rules".

Score (weight 2): the pod's preferred terms (+/- weight per matching pod in the
domain), existing pods' preferred terms that match this pod, and existing pods'
required affinity terms (hardPodAffinityWeight 1); normalized min..max to 0..100.

Everything is counted once per cycle in PreFilter/PreScore as (topologyKey,
value) -> count, so Filter and Score are a few dict lookups per node.
Namespaces: a term's `namespaces` plus namespaces matching its
`namespaceSelector` (read from the scheduler's Namespace informer; `{}` means
all); neither means the pod's own namespace, as upstream.
"""

from __future__ import annotations

from typing import Any

from kybern.machinery.selectors import from_label_selector_object, matches
from kybern.scheduler.framework import (
    MAX_NODE_SCORE,
    STATUS_SKIP,
    UNSCHEDULABLE,
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
)

ERR_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
ERR_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1  # InterPodAffinityArgs default

Pair = tuple[str, str]


class Term:
    """A PodAffinityTerm made ready to match (upstream framework.AffinityTerm)."""
    __slots__ = ("all_namespaces", "namespaces", "ns_selector", "selector", "topology_key", "weight")

    def __init__(self, t: dict[str, Any], pod_ns: str, weight: int = 0,
                 ns_labels_of: Any = None, pod_labels: dict[str, str] | None = None) -> None:
        self.selector = from_label_selector_object(t.get("labelSelector"))  # None matches nothing
        if self.selector is not None and pod_labels:
            # matchLabelKeys / mismatchLabelKeys: the owning pod's values of those labels
            # ANDed into the selector (upstream's apiserver merges them at pod creation)
            for k in t.get("matchLabelKeys") or ():
                if k in pod_labels:
                    self.selector.append((k, "in", (pod_labels[k],)))
            for k in t.get("mismatchLabelKeys") or ():
                if k in pod_labels:
                    self.selector.append((k, "notin", (pod_labels[k],)))
        self.topology_key: str = t.get("topologyKey") or ""
        self.weight = weight
        self.namespaces: set[str] = set(t.get("namespaces") or ())
        ns_sel = t.get("namespaceSelector")
        self.ns_selector = from_label_selector_object(ns_sel)
        self.all_namespaces = ns_sel is not None and not self.ns_selector
        if ns_sel is None and not self.namespaces:
            self.namespaces = {pod_ns}
        if ns_labels_of is not None and self.ns_selector and not self.all_namespaces:
            # upstream merges the selector's namespaces into the set for the incoming pod
            self.namespaces |= {name for name, labels in ns_labels_of() if matches(self.ns_selector, labels)}
            self.ns_selector = None

    def matches(self, namespace: str, labels: dict[str, str], ns_labels: dict[str, str] | None) -> bool:
        if not (self.all_namespaces or namespace in self.namespaces
                or (self.ns_selector and ns_labels is not None and matches(self.ns_selector, ns_labels))):
            return False
        return self.selector is not None and matches(self.selector, labels)


def _affinity(pod: PodInfo) -> tuple[dict[str, Any], dict[str, Any]]:
    return pod.pod_affinity, pod.pod_anti_affinity


def _required(part: dict[str, Any], ns: str, ns_list: Any = None,
              labels: dict[str, str] | None = None) -> list[Term]:
    return [Term(t, ns, 0, ns_list, labels) for t in part.get("requiredDuringSchedulingIgnoredDuringExecution") or []]


def _preferred(part: dict[str, Any], ns: str, ns_list: Any = None,
               labels: dict[str, str] | None = None) -> list[Term]:
    return [Term(w.get("podAffinityTerm") or {}, ns, int(w.get("weight") or 0), ns_list, labels)
            for w in part.get("preferredDuringSchedulingIgnoredDuringExecution") or []]


def _add(counts: dict[Pair, int], node: NodeInfo, key: str, value: int) -> None:
    tv = node.labels.get(key)
    if tv is not None:
        pair = (key, tv)
        n = counts.get(pair, 0) + value
        if n:
            counts[pair] = n
        else:
            counts.pop(pair, None)


class InterPodAffinity:
    name = "InterPodAffinity"
    weight = 2

    def __init__(self) -> None:
        self._namespaces: Any = None  # Informer of Namespaces, set by the scheduler

    def set_informers(self, informers: dict[str, Any]) -> None:
        self._namespaces = informers.get("namespaces")

    def _ns_labels(self, ns: str) -> dict[str, str] | None:
        if self._namespaces is None:
            return None
        obj = self._namespaces.get(ns)
        return (obj["metadata"].get("labels") or {}) if obj else {}

    def _ns_list(self) -> list[tuple[str, dict[str, str]]]:
        if self._namespaces is None:
            return []
        return [(o["metadata"]["name"], o["metadata"].get("labels") or {}) for o in self._namespaces.list()]

    def _existing_with_affinity(self, state: CycleState) -> list[tuple[NodeInfo, PodInfo, dict[str, Any], dict[str, Any]]]:
        """Pods in the cache with pod (anti)affinity, once per cycle. The scheduler
        passes the nodes holding such pods (`affinity_nodes`, kept by the cache as
        pods come and go), so a cluster without any costs nothing here."""
        found = state.get("InterPodAffinity/existing")
        if found is not None:
            return found
        nodes = state.get("affinity_nodes")
        if nodes is None:
            nodes = [n for n in state.get("all_nodes") or () if n.affinity_pods]
        found = [(n, pi, pi.pod_affinity, pi.pod_anti_affinity)
                 for n in nodes for pi in n.affinity_pods.values()]
        state["InterPodAffinity/existing"] = found
        return found

    # -- filter -----------------------------------------------------------------------
    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        existing = self._existing_with_affinity(state)
        aff, anti = _affinity(pod)
        req_aff = _required(aff, pod.namespace, self._ns_list, pod.labels)
        req_anti = _required(anti, pod.namespace, self._ns_list, pod.labels)
        existing_anti = [(n, terms) for n, pi, _, a in existing
                         if (terms := _required(a, pi.namespace, None, pi.labels))]
        if not req_aff and not req_anti and not existing_anti:
            return STATUS_SKIP
        ns_labels = self._ns_labels(pod.namespace)
        # existing pods' anti-affinity terms that match the incoming pod (symmetry)
        existing_counts: dict[Pair, int] = {}
        for n, terms in existing_anti:
            for t in terms:
                if t.matches(pod.namespace, pod.labels, ns_labels):
                    _add(existing_counts, n, t.topology_key, 1)
        # the incoming pod's own required terms against every pod in the cache
        aff_counts: dict[Pair, int] = {}
        anti_counts: dict[Pair, int] = {}
        if req_aff or req_anti:
            for n in state.get("all_nodes") or ():
                if not n.pods:
                    continue
                for pi in n.pods.values():
                    if req_aff and all(t.matches(pi.namespace, pi.labels, None) for t in req_aff):
                        for t in req_aff:
                            _add(aff_counts, n, t.topology_key, 1)
                    for t in req_anti:
                        if t.matches(pi.namespace, pi.labels, None):
                            _add(anti_counts, n, t.topology_key, 1)
        self_match = bool(req_aff) and all(t.matches(pod.namespace, pod.labels, ns_labels) for t in req_aff)
        state["InterPodAffinity"] = (req_aff, req_anti, aff_counts, anti_counts, existing_counts, self_match)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        req_aff, req_anti, aff_counts, anti_counts, existing_counts, self_match = state["InterPodAffinity"]
        labels = node.labels
        if req_aff:
            pods_exist = True
            for t in req_aff:
                v = labels.get(t.topology_key)
                if v is None:
                    return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_AFFINITY)
                if aff_counts.get((t.topology_key, v), 0) <= 0:
                    pods_exist = False
            # the first pod of a group that has affinity to itself may go anywhere
            if not pods_exist and not (not aff_counts and self_match):
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_AFFINITY)
        if anti_counts:
            for t in req_anti:
                v = labels.get(t.topology_key)
                if v is not None and anti_counts.get((t.topology_key, v), 0) > 0:
                    return Status(UNSCHEDULABLE, ERR_ANTI_AFFINITY)
        if existing_counts:
            for pair in labels.items():
                if existing_counts.get(pair, 0) > 0:
                    return Status(UNSCHEDULABLE, ERR_EXISTING_ANTI_AFFINITY)
        return None

    # -- score ------------------------------------------------------------------------
    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        aff, anti = _affinity(pod)
        pref_aff = _preferred(aff, pod.namespace, self._ns_list, pod.labels)
        pref_anti = _preferred(anti, pod.namespace, self._ns_list, pod.labels)
        existing = self._existing_with_affinity(state)
        if not pref_aff and not pref_anti and not existing:
            return STATUS_SKIP
        ns_labels = self._ns_labels(pod.namespace)
        scores: dict[Pair, int] = {}
        if pref_aff or pref_anti:
            for n in state.get("all_nodes") or nodes:
                if not n.labels:
                    continue
                for pi in n.pods.values():
                    for t in pref_aff:
                        if t.matches(pi.namespace, pi.labels, None):
                            _add(scores, n, t.topology_key, t.weight)
                    for t in pref_anti:
                        if t.matches(pi.namespace, pi.labels, None):
                            _add(scores, n, t.topology_key, -t.weight)
        for n, pi, e_aff, e_anti in existing:
            if not n.labels:
                continue
            for t in _required(e_aff, pi.namespace, None, pi.labels):
                if t.matches(pod.namespace, pod.labels, ns_labels):
                    _add(scores, n, t.topology_key, HARD_POD_AFFINITY_WEIGHT)
            for t in _preferred(e_aff, pi.namespace, None, pi.labels):
                if t.matches(pod.namespace, pod.labels, ns_labels):
                    _add(scores, n, t.topology_key, t.weight)
            for t in _preferred(e_anti, pi.namespace, None, pi.labels):
                if t.matches(pod.namespace, pod.labels, ns_labels):
                    _add(scores, n, t.topology_key, -t.weight)
        if not scores:
            return STATUS_SKIP
        state["InterPodAffinity/score"] = scores
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        scores: dict[Pair, int] = state["InterPodAffinity/score"]
        return sum(scores.get(pair, 0) for pair in node.labels.items())

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        if not scores:
            return
        lo, hi = min(scores), max(scores)
        diff = hi - lo
        for i, s in enumerate(scores):
            scores[i] = int(MAX_NODE_SCORE * (s - lo) / diff) if diff > 0 else 0
