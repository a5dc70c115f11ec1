"""NodeResourcesFit: a pod fits a node when its requests fit in the node's
allocatable minus what assigned pods request, and the node has a pod slot left
(filter); LeastAllocated prefers emptier nodes (score).
BalancedAllocation prefers nodes whose cpu and memory usage stay even."""

from __future__ import annotations

from kybern.scheduler.framework import (
    MAX_NODE_SCORE,
    UNSCHEDULABLE,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
)


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
        # fast path: room for one more pod and every request fits
        if len(node.pods) < node.allowed_pods:
            alloc, used = node.allocatable, node.requested
            for name, want in pod.request_items:
                if want > alloc.get(name, 0) - used.get(name, 0):
                    break
            else:
                return None
        reasons = insufficient(pod, node)
        return Status(UNSCHEDULABLE, *reasons) if reasons else None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        cpu = least_allocated(node.non_zero_cpu + pod.non_zero_cpu, node.alloc_cpu)
        mem = least_allocated(node.non_zero_mem + pod.non_zero_mem, node.alloc_mem)
        return (cpu + mem) // 2

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        pc, pm = pod.non_zero_cpu, pod.non_zero_mem
        out = []
        for n in nodes:
            cap, req = n.alloc_cpu, n.non_zero_cpu + pc
            cpu = (cap - req) * MAX_NODE_SCORE // cap if cap and req <= cap else 0
            cap, req = n.alloc_mem, n.non_zero_mem + pm
            mem = (cap - req) * MAX_NODE_SCORE // cap if cap and req <= cap else 0
            out.append((cpu + mem) // 2)
        return out


class BalancedAllocation:
    name = "NodeResourcesBalancedAllocation"
    weight = 1

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return self.score_nodes(state, pod, [node])[0]

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        pc, pm = pod.requests.get("cpu", 0), pod.requests.get("memory", 0)
        out = []
        for n in nodes:
            cc, cm = n.alloc_cpu, n.alloc_mem
            if not cc or not cm:
                out.append(0)
                continue
            fc = min((n.requested.get("cpu", 0) + pc) / cc, 1.0)
            fm = min((n.requested.get("memory", 0) + pm) / cm, 1.0)
            out.append(int((1 - abs(fc - fm) / 2) * MAX_NODE_SCORE))
        return out
