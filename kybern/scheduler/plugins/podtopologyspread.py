"""PodTopologySpread: spread pods across topology domains (nodes, zones).

- A pod's own topologySpreadConstraints: DoNotSchedule ones filter (skew =
  matching pods in the node's domain + self - the emptiest domain, must stay
  <= maxSkew); ScheduleAnyway ones score.
- A pod without constraints that has a controller gets upstream's system
  defaults: spread by hostname (maxSkew 3) and zone (maxSkew 5), ScheduleAnyway.
  Upstream matches them by the selector of the owning Service/ReplicaSet; we
  count pods with the same controller, kept per node by the cache, which is the
  same set for ReplicaSet-made pods and O(1) per node.

Simplified against upstream: no minDomains, no nodeAffinityPolicy/nodeTaintsPolicy
(domains are every node that has the key), no matchLabelKeys.
"""

from __future__ import annotations

import math
from typing import Any

from kybern.machinery.selectors import selector_matches
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


def _count_on(node: NodeInfo, pod: PodInfo, c: dict[str, Any], system: bool) -> int:
    if system:
        return node.owner_counts.get(pod.owner_uid or "", 0)
    sel = c.get("labelSelector")
    return sum(1 for p in node.pods.values()
               if p.namespace == pod.namespace and not p.terminating and selector_matches(sel, p.labels))


class PodTopologySpread:
    name = "PodTopologySpread"
    weight = 2

    # -- filter -----------------------------------------------------------------------
    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        hard = [c for c in pod.spec.get("topologySpreadConstraints") or []
                if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"]
        if not hard:
            return STATUS_SKIP
        nodes: list[NodeInfo] = state.get("all_nodes") or []
        prepared = []
        for c in hard:
            key = c.get("topologyKey", "")
            counts: dict[str, int] = {}
            for n in nodes:
                if key in n.labels:
                    v = n.labels[key]
                    counts[v] = counts.get(v, 0) + _count_on(n, pod, c, False)
            self_match = 1 if selector_matches(c.get("labelSelector"), pod.labels) else 0
            prepared.append((c, counts, min(counts.values(), default=0), self_match))
        state["PodTopologySpread"] = prepared
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for c, counts, min_match, self_match in state["PodTopologySpread"]:
            key = c.get("topologyKey", "")
            if key not in node.labels:
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_MISSING_LABEL)
            skew = counts.get(node.labels[key], 0) + self_match - min_match
            if skew > int(c.get("maxSkew", 1)):
                return Status(UNSCHEDULABLE, ERR_REASON)
        return None

    # -- score ------------------------------------------------------------------------
    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        own = pod.spec.get("topologySpreadConstraints") or []
        if own:
            soft = [c for c in own if c.get("whenUnsatisfiable") == "ScheduleAnyway"]
            system = False
        elif pod.owner_uid:
            soft, system = SYSTEM_DEFAULTS, True
        else:
            soft = []
        if not soft:
            return STATUS_SKIP
        require_all = not system
        ignored: set[str] = set()
        domain_counts: list[dict[str, int]] = [{} for _ in soft]
        for n in nodes:
            if require_all and not all(c["topologyKey"] in n.labels for c in soft):
                ignored.add(n.name)
                continue
            for i, c in enumerate(soft):
                key = c["topologyKey"]
                if key in n.labels and key != HOSTNAME:
                    v = n.labels[key]
                    domain_counts[i][v] = domain_counts[i].get(v, 0) + _count_on(n, pod, c, system)
        weights = []
        for i, c in enumerate(soft):
            if c["topologyKey"] == HOSTNAME:
                size = len(nodes) - len(ignored)
            else:
                size = len(domain_counts[i])
            weights.append(math.log(size + 2))
        state["PodTopologySpread/score"] = (soft, system, ignored, domain_counts, weights)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        soft, system, ignored, domain_counts, weights = state["PodTopologySpread/score"]
        if node.name in ignored:
            return 0
        total = 0.0
        for i, c in enumerate(soft):
            key = c["topologyKey"]
            if key not in node.labels:
                continue
            if key == HOSTNAME:
                cnt = _count_on(node, pod, c, system)
            else:
                cnt = domain_counts[i].get(node.labels[key], 0)
            total += cnt * weights[i] + (int(c.get("maxSkew", 1)) - 1)
        return math.floor(total + 0.5)  # Go's math.Round: half away from zero

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        soft, system, _, domain_counts, weights = state["PodTopologySpread/score"]
        if not system:
            return [self.score(state, pod, n) for n in nodes]
        owner = pod.owner_uid or ""
        prepared = [(c["topologyKey"], c["topologyKey"] == HOSTNAME, domain_counts[i], weights[i],
                     int(c.get("maxSkew", 1)) - 1) for i, c in enumerate(soft)]
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
