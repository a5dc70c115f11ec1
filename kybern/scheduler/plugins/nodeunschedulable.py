"""NodeUnschedulable: cordoned nodes (spec.unschedulable) take only pods that
tolerate the node.kubernetes.io/unschedulable:NoSchedule taint."""

from __future__ import annotations

from kybern.machinery.taints import tolerates
from kybern.scheduler.framework import (
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
)

ERR_REASON = "node(s) were unschedulable"
_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable:
    name = "NodeUnschedulable"

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.unschedulable:
            return None
        if any(tolerates(t, _TAINT) for t in pod.tolerations):
            return None
        return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON)
