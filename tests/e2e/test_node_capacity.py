"""A node's pod capacity: `kybern agent --max-pods N` advertises `pods: N`, and a
pod bound to a full node (spec.nodeName skips the scheduler) is refused as the
kubelet refuses it: phase Failed, reason OutOfpods, and an event. An extended
resource an operator advertises in the node's status.capacity ("Advertise Extended
Resources for a Node") becomes allocatable and is counted by the scheduler."""

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


DONGLE = "example.com/dongle"


def _dongle_pod(name: str, count: int) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"terminationGracePeriodSeconds": 1,
                                "containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"],
                                                "resources": {"requests": {DONGLE: str(count)},
                                                              "limits": {DONGLE: str(count)}}}]}})


def test_extended_resource_advertised_in_capacity(cluster, namespace):
    """tasks/administer-cluster/extended-resource-node: the operator's JSON patch of
    status.capacity; the agent copies it to allocatable (its next status update, within
    10 s, docs/node.md) and keeps it; a pod asking for 3 of 4 dongles
    is scheduled, one asking for 2 more stays Pending: Insufficient example.com/dongle."""
    node, ns = "node-1", ["-n", namespace]
    path = "/status/capacity/example.com~1dongle"
    cluster.kubectl("patch", "node", node, "--subresource=status", "--type=json",
                    "-p", json.dumps([{"op": "add", "path": path, "value": "4"}]))
    try:
        jp = "-o=jsonpath={.status.allocatable.example\\.com/dongle}"
        cluster.wait_for(lambda: cluster.kubectl("get", "node", node, jp).stdout == "4", timeout=25,
                         interval=0.5, what="the dongles allocatable")
        cluster.kubectl("apply", *ns, "-f", "-", input=_dongle_pod("extended-resource-demo", 3))
        cluster.wait_for(lambda: cluster.kjson("get", "pod", "extended-resource-demo", *ns)["spec"].get("nodeName")
                         == node, what="the first pod scheduled")
        cluster.kubectl("apply", *ns, "-f", "-", input=_dongle_pod("extended-resource-demo-2", 2))
        cluster.wait_for(lambda: "Insufficient example.com/dongle" in cluster.kubectl(
            "get", "events", *ns, "--field-selector", "involvedObject.name=extended-resource-demo-2,"
            "reason=FailedScheduling", "-o=jsonpath={.items[*].message}").stdout, what="FailedScheduling")
        pod = cluster.kjson("get", "pod", "extended-resource-demo-2", *ns)
        assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
        # the agent's status updates since the patch left the operator's capacity entry alone
        status = cluster.kjson("get", "node", node)["status"]
        assert status["capacity"][DONGLE] == "4" and status["allocatable"][DONGLE] == "4"
    finally:  # the shared node as it was: no dongles (the agent drops a stale allocatable entry itself)
        cluster.kubectl("delete", "pods", "--all", *ns, "--timeout=60s", check=False)
        for p in (path, "/status/allocatable/example.com~1dongle"):  # one patch each: either may be missing
            cluster.kubectl("patch", "node", node, "--subresource=status", "--type=json",
                            "-p", json.dumps([{"op": "remove", "path": p}]), check=False)
