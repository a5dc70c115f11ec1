"""The node agent's `/configz`: its settings under the kubelet's KubeletConfiguration
field names (kubelet.config.k8s.io/v1beta1), as `kubectl get --raw
/api/v1/nodes/NODE/proxy/configz` shows them for a kubelet. Only the settings the
agent has are listed; like the kubelet's, the answer is `{"kubeletconfig": {...}}`
without kind and apiVersion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kybern.network.resolvconf import CLUSTER_DNS_IP
from kybern.node.backoff import go_duration

if TYPE_CHECKING:
    from kybern.node.agent import NodeAgent


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
