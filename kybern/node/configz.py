"""The node agent's `/configz`: its settings under the kubelet's KubeletConfiguration
field names (kubelet.config.k8s.io/v1beta1), as `kubectl get --raw
/api/v1/nodes/NODE/proxy/configz` shows them for a kubelet. Only the settings the
agent has are listed; like the kubelet's, the answer is `{"kubeletconfig": {...}}`
without kind and apiVersion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kybern.network.resolvconf import CLUSTER_DNS_IP

if TYPE_CHECKING:
    from kybern.node.agent import NodeAgent


def go_duration(seconds: float) -> str:
    """time.Duration's String(): 10s, 1m0s, 1h30m0s, 500ms."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds else "0s"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    secs = f"{s:g}s"
    if h:
        return f"{int(h)}h{int(m)}m{secs}"
    return f"{int(m)}m{secs}" if m else secs


def kubelet_config(agent: NodeAgent) -> dict[str, Any]:
    return {"kubeletconfig": {
        "enableServer": True,
        "address": agent.address,
        "port": agent.port,
        "readOnlyPort": 0,
        "clusterDomain": "cluster.local",
        "clusterDNS": [CLUSTER_DNS_IP],
        "maxPods": agent.max_pods,
        **({"podCIDR": agent.network.pod_cidr} if agent.network.pod_cidr else {}),
        "eventRecordQPS": agent.event_qps,
        "eventBurst": agent.event_burst,
        "nodeStatusUpdateFrequency": go_duration(agent.status_interval),
        "nodeLeaseDurationSeconds": 40,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": True,
        "enableDebuggingHandlers": True,
        **({"staticPodPath": agent.pod_manifest_path} if agent.pod_manifest_path else {}),
    }}
