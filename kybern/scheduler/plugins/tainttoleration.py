"""TaintToleration: a node's NoSchedule/NoExecute taints repel pods that do not
tolerate them (filter); untolerated PreferNoSchedule taints lower the score."""

from __future__ import annotations

from kybern.machinery.taints import first_untolerated, tolerates
from kybern.scheduler.framework import (
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
    default_normalize,
)


class TaintToleration:
    name = "TaintToleration"
    weight = 3

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        t = first_untolerated(node.taints, pod.tolerations)
        if t is None:
            return None
        return Status(UNSCHEDULABLE_AND_UNRESOLVABLE,
                      f"node(s) had untolerated taint {{{t.get('key', '')}: {t.get('value', '')}}}")

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        if not node.taints:
            return 0
        tols = [t for t in pod.tolerations if not t.get("effect") or t.get("effect") == "PreferNoSchedule"]
        return sum(1 for t in node.taints if t.get("effect") == "PreferNoSchedule"
                   and not any(tolerates(tol, t) for tol in tols))

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        # most nodes carry no taint: no Python call for them
        return [self.score(state, pod, n) if n.taints else 0 for n in nodes]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores, reverse=True)
