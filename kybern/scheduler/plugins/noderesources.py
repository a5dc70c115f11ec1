"""NodeResourcesFit: a pod fits a node when its requests fit in the node's
allocatable minus what assigned pods request, and the node has a pod slot left
(filter); LeastAllocated prefers emptier nodes (score).
BalancedAllocation prefers nodes whose cpu and memory usage stay even."""

from __future__ import annotations

from kybern.scheduler.framework import (MAX_NODE_SCORE, UNSCHEDULABLE, CycleState, NodeInfo,
                                        PodInfo, Status)


def insufficient(pod: PodInfo, node: NodeInfo) -> list[str]:
    """The upstream reasons, in upstream order: pods, cpu, memory, ephemeral-storage, others."""
    out: list[str] = []
    if len(node.pods) + 1 > node.allowed_pods:
        out.append("Too many pods")
    req = pod.requests
    if not req:
        return out
    for name in ("cpu", "memory", "ephemeral-storage"):
        want = req.get(name, 0)
        if want > 0 and want > node.allocatable.get(name, 0) - node.requested.get(name, 0):
            out.append(f"Insufficient {name}")
    for name in sorted(req):
        if name in ("cpu", "memory", "ephemeral-storage"):
            continue
        want = req[name]
        if want > 0 and want > node.allocatable.get(name, 0) - node.requested.get(name, 0):
            out.append(f"Insufficient {name}")
    return out


def least_allocated(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


class NodeResourcesFit:
    name = "NodeResourcesFit"
    weight = 1

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        reasons = insufficient(pod, node)
        return Status(UNSCHEDULABLE, *reasons) if reasons else None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        cpu = least_allocated(node.non_zero_cpu + pod.non_zero_cpu, node.allocatable.get("cpu", 0))
        mem = least_allocated(node.non_zero_mem + pod.non_zero_mem, node.allocatable.get("memory", 0))
        return (cpu + mem) // 2


class BalancedAllocation:
    name = "NodeResourcesBalancedAllocation"
    weight = 1

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        cap_cpu = node.allocatable.get("cpu", 0)
        cap_mem = node.allocatable.get("memory", 0)
        if not cap_cpu or not cap_mem:
            return 0
        f_cpu = min((node.requested.get("cpu", 0) + pod.requests.get("cpu", 0)) / cap_cpu, 1.0)
        f_mem = min((node.requested.get("memory", 0) + pod.requests.get("memory", 0)) / cap_mem, 1.0)
        std = abs(f_cpu - f_mem) / 2
        return int((1 - std) * MAX_NODE_SCORE)
