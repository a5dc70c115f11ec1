"""NodePorts: a pod's containers' hostPorts must be free on the node (upstream
pkg/scheduler/framework/plugins/nodeports) — "node(s) didn't have free ports for
the requested pod ports". A port is (hostIP, protocol, hostPort); hostIP 0.0.0.0
(or unset) conflicts with the same protocol and port on any address."""

from __future__ import annotations

from kybern.scheduler.framework import (
    STATUS_SKIP,
    UNSCHEDULABLE,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
)

ERR_REASON = "node(s) didn't have free ports for the requested pod ports"
ANY = "0.0.0.0"


def host_ports(pod: PodInfo) -> tuple[tuple[str, str, int], ...]:
    """The pod's (hostIP, protocol, hostPort) of its containers (not init containers,
    as upstream), remembered on the PodInfo."""
    if pod.host_ports is None:
        out = []
        for c in pod.spec.get("containers") or []:
            for p in c.get("ports") or []:
                port = int(p.get("hostPort") or 0)
                if port > 0:
                    out.append((p.get("hostIP") or ANY, p.get("protocol") or "TCP", port))
        pod.host_ports = tuple(out)
    return pod.host_ports


def conflicts(want: tuple[str, str, int], used: set[tuple[str, str, int]]) -> bool:
    """HostPortInfo.CheckConflict."""
    ip, proto, port = want
    if ip == ANY:
        return any(u[1] == proto and u[2] == port for u in used)
    return (ip, proto, port) in used or (ANY, proto, port) in used


class NodePorts:
    name = "NodePorts"

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        want = host_ports(pod)
        if not want:
            return STATUS_SKIP
        state["NodePorts"] = want
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        used = {hp for p in node.pods.values() for hp in host_ports(p)}
        if not used:
            return None
        if any(conflicts(w, used) for w in state["NodePorts"]):
            return Status(UNSCHEDULABLE, ERR_REASON)
        return None
