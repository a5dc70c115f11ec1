"""A node's pod capacity: `kybern agent --max-pods N` advertises `pods: N`, and a
pod bound to a full node (spec.nodeName skips the scheduler) is refused as the
kubelet refuses it: phase Failed, reason OutOfpods, and an event."""

from __future__ import annotations

import json

import pytest

from tests.conftest import start_agent, stop_agent

pytestmark = pytest.mark.e2e


def _pod(name: str, node: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                                "containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"]}]}})


def test_max_pods_is_the_capacity_and_more_are_refused(cluster, namespace, tmp_path):
    node = f"small-{namespace[-12:]}".strip("-")
    agent = start_agent(cluster, node, tmp_path / "agent", "--max-pods", "2")
    try:
        cluster.wait_for(lambda: node in cluster.kubectl("get", "nodes", "--no-headers").stdout
                         and " Ready " in cluster.kubectl("get", "node", node, "--no-headers").stdout,
                         timeout=40, what="the small node Ready")
        status = cluster.kjson("get", "node", node)["status"]
        assert status["capacity"]["pods"] == "2" and status["allocatable"]["pods"] == "2"
        for name in ("one", "two"):
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_pod(name, node))
        cluster.wait_for(lambda: all(cluster.kjson("get", "pod", n, "-n", namespace)["status"].get("phase")
                                     == "Running" for n in ("one", "two")), timeout=40, what="two pods running")
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_pod("three", node))
        cluster.wait_for(lambda: cluster.kjson("get", "pod", "three", "-n", namespace)["status"].get("phase")
                         == "Failed", timeout=30, what="the third pod refused")
        st = cluster.kjson("get", "pod", "three", "-n", namespace)["status"]
        assert st["reason"] == "OutOfpods"
        assert st["message"] == "Node didn't have enough resource: pods, requested: 1, used: 2, capacity: 2"
        assert not st.get("containerStatuses")
        events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                                 "involvedObject.name=three").stdout
        assert "OutOfpods" in events
        # a refused pod can be deleted like any other; the others keep running
        cluster.kubectl("delete", "pod", "three", "-n", namespace, "--timeout=30s")
        assert cluster.kjson("get", "pod", "one", "-n", namespace)["status"]["phase"] == "Running"
    finally:  # leave the shared cluster as it was: no pods on a gone node, no NotReady node
        cluster.kubectl("delete", "pods", "--all", "-n", namespace, "--timeout=60s", check=False)
        stop_agent(agent)
        cluster.kubectl("delete", "node", node, check=False)
