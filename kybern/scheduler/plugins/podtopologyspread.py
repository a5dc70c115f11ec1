"""PodTopologySpread: spread pods across topology domains (nodes, zones), as
upstream's plugin (pkg/scheduler/framework/plugins/podtopologyspread).

- A pod's own topologySpreadConstraints: DoNotSchedule ones filter (skew =
  matching pods in the node's domain + self - the emptiest domain's, must stay
  <= maxSkew); ScheduleAnyway ones score.
- Which nodes make the domains: those with every constraint's topologyKey that
  pass the constraint's node inclusion policies: `nodeAffinityPolicy` (default
  Honor: the pod's nodeSelector and required node affinity must match) and
  `nodeTaintsPolicy` (default Ignore; Honor: the pod must tolerate the node's
  NoSchedule/NoExecute taints). So a Deployment held to two zones by its node
  affinity is not kept from spreading by an empty third zone.
- `minDomains` (DoNotSchedule only): with fewer eligible domains than that, the
  global minimum is taken as 0.
- `matchLabelKeys`: the pod's values of those labels are ANDed into the
  constraint's labelSelector (so pods of one ReplicaSet revision spread among
  themselves, with `pod-template-hash`).
- A pod without constraints whose controller is a ReplicaSet, ReplicationController
  or StatefulSet gets upstream's system defaults: spread by hostname (maxSkew 3)
  and zone (maxSkew 5), ScheduleAnyway. Upstream matches them by the selectors of
  the Services/ReplicaSets/ReplicationControllers/StatefulSets selecting the pod;
  we count pods with the same controller, kept per node by the cache, which is the
  same set for ReplicaSet-made pods and O(1) per node. (A Job's or DaemonSet's
  pods get no default spreading, as upstream unless a Service selects them.)

Scoring counts pods over all nodes (not just the feasible ones) for the domains
the feasible nodes are in, as upstream; the hostname domain is the node itself.
"""

from __future__ import annotations

import math
from typing import Any

from kybern.machinery import nodeaffinity
from kybern.machinery.selectors import Requirement, from_label_selector_object, matches
from kybern.machinery.taints import first_untolerated
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

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
SYSTEM_DEFAULTS = [
    {"maxSkew": 3, "topologyKey": HOSTNAME, "whenUnsatisfiable": "ScheduleAnyway"},
    {"maxSkew": 5, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway"},
]
ERR_REASON = "node(s) didn't match pod topology spread constraints"
ERR_MISSING_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"


class _Constraint:
    """One constraint prepared for a cycle: its selector as requirements (with
    matchLabelKeys merged in; None matches nothing) and its inclusion policies."""
    __slots__ = ("honor_affinity", "honor_taints", "key", "max_skew", "min_domains", "reqs", "self_match")

    def __init__(self, c: dict[str, Any], pod: PodInfo) -> None:
        self.key: str = c.get("topologyKey", "")
        self.max_skew = int(c.get("maxSkew", 1))
        self.min_domains = int(c.get("minDomains") or 1)
        reqs = from_label_selector_object(c.get("labelSelector"))
        if reqs is not None:
            for k in c.get("matchLabelKeys") or []:
                if k in pod.labels:
                    reqs.append((k, "in", (pod.labels[k],)))
        self.reqs: list[Requirement] | None = reqs
        self.self_match = reqs is not None and matches(reqs, pod.labels)
        self.honor_affinity = (c.get("nodeAffinityPolicy") or "Honor") == "Honor"
        self.honor_taints = (c.get("nodeTaintsPolicy") or "Ignore") == "Honor"

    def count_on(self, node: NodeInfo, namespace: str) -> int:
        reqs = self.reqs
        if reqs is None:
            return 0
        return sum(1 for p in node.pods.values()
                   if p.namespace == namespace and not p.terminating and matches(reqs, p.labels))


def _affinity_matcher(pod: PodInfo) -> Any:
    """The pod's nodeSelector and required node affinity as a test on a node."""
    sel = pod.spec.get("nodeSelector") or {}
    req = ((pod.spec.get("affinity") or {}).get("nodeAffinity") or {}) \
        .get("requiredDuringSchedulingIgnoredDuringExecution")
    terms = None if req is None else (req.get("nodeSelectorTerms") or [])
    if not sel and terms is None:
        return None

    def match(node: NodeInfo) -> bool:
        labels = node.labels
        if any(labels.get(k) != v for k, v in sel.items()):
            return False
        return terms is None or nodeaffinity.any_term_matches(terms, labels, node.name)
    return match


def _included(c: _Constraint, pod: PodInfo, node: NodeInfo, affinity: Any) -> bool:
    """topologySpreadConstraint.matchNodeInclusionPolicies."""
    if c.honor_affinity and affinity is not None and not affinity(node):
        return False
    return not (c.honor_taints and node.taints and first_untolerated(node.taints, pod.tolerations) is not None)


class PodTopologySpread:
    name = "PodTopologySpread"
    weight = 2

    # -- filter -----------------------------------------------------------------------
    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        hard = [_Constraint(c, pod) for c in pod.spec.get("topologySpreadConstraints") or []
                if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"]
        if not hard:
            return STATUS_SKIP
        nodes: list[NodeInfo] = state.get("all_nodes") or []
        affinity = _affinity_matcher(pod)
        keys = [c.key for c in hard]
        counts: list[dict[str, int]] = [{} for _ in hard]
        for n in nodes:
            labels = n.labels
            if not all(k in labels for k in keys):
                continue
            for i, c in enumerate(hard):
                if _included(c, pod, n, affinity):
                    v = labels[c.key]
                    counts[i][v] = counts[i].get(v, 0) + c.count_on(n, pod.namespace)
        prepared = []
        for c, cnt in zip(hard, counts, strict=True):
            min_match = 0 if len(cnt) < c.min_domains else min(cnt.values(), default=0)
            prepared.append((c, cnt, min_match))
        state["PodTopologySpread"] = prepared
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for c, counts, min_match in state["PodTopologySpread"]:
            if c.key not in node.labels:
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_MISSING_LABEL)
            skew = counts.get(node.labels[c.key], 0) + c.self_match - min_match
            if skew > c.max_skew:
                return Status(UNSCHEDULABLE, ERR_REASON)
        return None

    # -- score ------------------------------------------------------------------------
    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        own = pod.spec.get("topologySpreadConstraints") or []
        if own:
            soft = [_Constraint(c, pod) for c in own if c.get("whenUnsatisfiable") == "ScheduleAnyway"]
            system = False
        elif pod.spread_by_default:
            soft, system = [_Constraint(c, pod) for c in SYSTEM_DEFAULTS], True
        else:
            soft = []
        if not soft:
            return STATUS_SKIP
        require_all = not system
        keys = [c.key for c in soft]
        ignored: set[str] = set()
        domain_counts: list[dict[str, int]] = [{} for _ in soft]
        for n in nodes:  # the domains of the feasible nodes
            labels = n.labels
            if require_all and not all(k in labels for k in keys):
                ignored.add(n.name)
                continue
            for i, c in enumerate(soft):
                if c.key != HOSTNAME:
                    domain_counts[i].setdefault(labels.get(c.key, ""), 0)
        # their pods counted over every node, as upstream; nodes without the key (domain
        # "") add to the domain count's weight only: their score ignores the constraint
        all_nodes = state.get("all_nodes") or nodes
        affinity = _affinity_matcher(pod)
        owner = pod.owner_uid or ""
        for i, c in enumerate(soft):
            dc = domain_counts[i]
            if c.key == HOSTNAME or not any(dc):
                continue
            check = (c.honor_affinity and affinity is not None) or c.honor_taints
            key = c.key
            for n in all_nodes:
                labels = n.labels
                v = labels.get(key)
                if not v or v not in dc:
                    continue
                if require_all and not all(k in labels for k in keys):
                    continue
                if check and not _included(c, pod, n, affinity):
                    continue
                dc[v] += n.owner_counts.get(owner, 0) if system else c.count_on(n, pod.namespace)
        weights = []
        for i, c in enumerate(soft):
            size = len(nodes) - len(ignored) if c.key == HOSTNAME else len(domain_counts[i])
            weights.append(math.log(size + 2))
        state["PodTopologySpread/score"] = (soft, system, ignored, domain_counts, weights)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        soft, system, ignored, domain_counts, weights = state["PodTopologySpread/score"]
        if node.name in ignored:
            return 0
        total = 0.0
        for i, c in enumerate(soft):
            if c.key not in node.labels:
                continue
            if c.key == HOSTNAME:
                cnt = node.owner_counts.get(pod.owner_uid or "", 0) if system else c.count_on(node, pod.namespace)
            else:
                cnt = domain_counts[i].get(node.labels[c.key], 0)
            total += cnt * weights[i] + (c.max_skew - 1)
        return math.floor(total + 0.5)  # Go's math.Round: half away from zero

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        soft, system, _, domain_counts, weights = state["PodTopologySpread/score"]
        if not system:
            return [self.score(state, pod, n) for n in nodes]
        owner = pod.owner_uid or ""
        prepared = [(c.key, c.key == HOSTNAME, domain_counts[i], weights[i], c.max_skew - 1)
                    for i, c in enumerate(soft)]
        out = []
        for n in nodes:
            labels = n.labels
            total = 0.0
            for key, is_host, counts, w, skew in prepared:
                if key in labels:
                    cnt = n.owner_counts.get(owner, 0) if is_host else counts.get(labels[key], 0)
                    total += cnt * w + skew
            out.append(math.floor(total + 0.5))
        return out

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        _, _, ignored, _, _ = state["PodTopologySpread/score"]
        nodes: list[NodeInfo] = state.get("scored_nodes") or []
        valid = [s for i, s in enumerate(scores) if not nodes or nodes[i].name not in ignored]
        if not valid:
            return
        lo, hi = min(valid), max(valid)
        for i, s in enumerate(scores):
            if nodes and nodes[i].name in ignored:
                scores[i] = 0
            elif hi == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (hi + lo - s) // hi
