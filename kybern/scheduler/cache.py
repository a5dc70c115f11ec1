"""The scheduler's cache: a NodeInfo per node with the pods bound or assumed to
it. A pod is *assumed* the moment the scheduler picks its node, before the
binding is written, so the next pod already sees the capacity it took (upstream
"assume"); the informer's view of the bound pod later confirms it, and a failed
binding forgets it."""

from __future__ import annotations

from typing import Any

from kybern.scheduler.framework import NodeInfo, PodInfo


class Cache:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._pod_node: dict[str, str] = {}  # pod key -> node it counts on
        self.assumed: set[str] = set()
        self._list: list[NodeInfo] | None = None
        self._with_affinity: set[str] = set()  # nodes holding pods with pod (anti)affinity

    def node_list(self) -> list[NodeInfo]:
        """Nodes with a Node object (pods may reference nodes not seen yet)."""
        if self._list is None:
            self._list = [n for n in self.nodes.values() if n.node is not None]
        return self._list

    def nodes_with_affinity(self) -> list[NodeInfo]:
        """Nodes (with a Node object) holding pods with pod (anti)affinity
        (upstream HavePodsWithAffinityNodeInfoList); kept as pods come and go."""
        out = []
        for name in self._with_affinity:
            ni = self.nodes.get(name)
            if ni is not None and ni.node is not None:
                out.append(ni)
        return out

    def _info(self, name: str) -> NodeInfo:
        ni = self.nodes.get(name)
        if ni is None:
            ni = self.nodes[name] = NodeInfo(name)
        return ni

    # -- nodes ----------------------------------------------------------------------
    def set_node(self, node: dict[str, Any]) -> None:
        ni = self._info(node["metadata"]["name"])
        if ni.node is None:
            self._list = None
        ni.set_node(node)

    def remove_node(self, name: str) -> None:
        ni = self.nodes.get(name)
        if ni is None:
            return
        self._list = None
        if ni.pods:
            ni.node = None  # keep the pods' accounting until they go
        else:
            del self.nodes[name]

    # -- pods -----------------------------------------------------------------------
    def add_pod(self, pi: PodInfo, node: str) -> None:
        prev = self._pod_node.get(pi.key)
        if prev is not None and prev != node:
            self.remove_pod(pi.key)
        ni = self._info(node)
        ni.add_pod(pi)
        self._pod_node[pi.key] = node
        if ni.affinity_pods:
            self._with_affinity.add(node)

    def remove_pod(self, key: str) -> None:
        self.assumed.discard(key)
        node = self._pod_node.pop(key, None)
        if node is None:
            return
        ni = self.nodes.get(node)
        if ni is not None:
            ni.remove_pod(key)
            if not ni.affinity_pods:
                self._with_affinity.discard(node)
            if ni.node is None and not ni.pods:
                del self.nodes[node]

    def assume(self, pi: PodInfo, node: str) -> None:
        self.add_pod(pi, node)
        self.assumed.add(pi.key)

    def forget(self, key: str) -> None:
        if key in self.assumed:
            self.remove_pod(key)

    def confirm(self, pi: PodInfo, node: str) -> None:
        """The informer shows the pod bound: it is now a fact, not an assumption."""
        self.assumed.discard(pi.key)
        self.add_pod(pi, node)

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed
