"""NodeName: a pod that names a node (spec.nodeName) fits only there."""

from __future__ import annotations

from kybern.scheduler.framework import (
    STATUS_SKIP,
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
)

ERR_REASON = "node(s) didn't match the requested node name"


class NodeName:
    name = "NodeName"

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        return None if pod.spec.get("nodeName") else STATUS_SKIP

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        want = pod.spec.get("nodeName")
        if not want or want == node.name:
            return None
        return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON)
