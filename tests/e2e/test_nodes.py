"""Node lifecycle on a private two-node cluster: cordon/drain with real
kubectl (evictions through pods/eviction; the ReplicaSet recreates the pods on
the other node), and a node whose agent is killed going NotReady with the
unreachable taints, then coming back. Heartbeats are shortened through the
environment (KYBERN_NODE_LEASE_INTERVAL, KYBERN_NODE_MONITOR_GRACE_PERIOD)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import start_agent, start_cluster, stop_cluster

pytestmark = pytest.mark.e2e

FAST = {"KYBERN_NODE_LEASE_INTERVAL": "1", "KYBERN_NODE_MONITOR_GRACE_PERIOD": "4"}


def agent(c, name: str, base: Path) -> subprocess.Popen:
    return start_agent(c, name, base / name, env=FAST, log=base / f"{name}.log")


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    base = tmp_path_factory.mktemp("nodes")
    saved = {k: os.environ.get(k) for k in FAST}
    os.environ.update(FAST)
    try:
        c = start_cluster(base / "c")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    agent_proc = agent(c, "node-2", base)
    c.wait_for(lambda: c.kubectl("get", "node", "node-2", "--no-headers", check=False).stdout.split()[1:2]
               == ["Ready"], timeout=30, what="node-2 Ready")
    c.agents = {"node-2": agent_proc}  # type: ignore[attr-defined]
    c.base = base  # type: ignore[attr-defined]
    yield c
    for p in c.agents.values():  # type: ignore[attr-defined]
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    stop_cluster(c)


def pods_by_node(c, ns: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in c.kjson("get", "pods", "-n", ns, "-l", "app=web")["items"]:
        if p["metadata"].get("deletionTimestamp") or p["status"].get("phase") != "Running":
            continue
        out.setdefault(p["spec"].get("nodeName", ""), []).append(p["metadata"]["name"])
    return out


def test_cordon_moves_nothing_and_drain_evicts_to_the_other_node(two_nodes):
    c = two_nodes
    c.kubectl("cordon", "node-2")
    c.kubectl("create", "deployment", "web", "--image=demo:v1", "--replicas=2", "--", "sleep", "600")
    c.wait_for(lambda: len(pods_by_node(c, "default").get("node-1", [])) == 2, timeout=30, what="2 pods on node-1")
    c.kubectl("uncordon", "node-2")
    out = c.kubectl("cordon", "node-1").stdout
    assert "node/node-1 cordoned" in out
    row = c.kubectl("get", "node", "node-1", "--no-headers").stdout.split()
    assert row[1] == "Ready,SchedulingDisabled"
    time.sleep(1)
    assert len(pods_by_node(c, "default").get("node-1", [])) == 2  # cordon moves nothing
    before = set(pods_by_node(c, "default")["node-1"])
    drain = c.kubectl("drain", "node-1", "--ignore-daemonsets", "--pod-selector=app=web", "--timeout=60s",
                      timeout=90)
    assert "evicting pod default/" in drain.stderr + drain.stdout
    assert "node/node-1 drained" in drain.stdout
    c.wait_for(lambda: len(pods_by_node(c, "default").get("node-2", [])) == 2, timeout=40,
               what="the ReplicaSet's new pods on node-2")
    assert not before & set(pods_by_node(c, "default")["node-2"])
    taints = c.kjson("get", "node", "node-1")["spec"].get("taints") or []
    assert {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"} in taints
    c.kubectl("uncordon", "node-1")
    c.wait_for(lambda: not c.kjson("get", "node", "node-1")["spec"].get("taints"), timeout=15,
               what="the unschedulable taint removed")


def test_node_goes_not_ready_when_its_agent_dies_and_comes_back(two_nodes):
    c = two_nodes
    c.agents["node-2"].send_signal(signal.SIGKILL)
    c.agents["node-2"].wait()

    def ready_condition() -> dict:
        conds = c.kjson("get", "node", "node-2")["status"]["conditions"]
        return next(x for x in conds if x["type"] == "Ready")

    cond = c.wait_for(lambda: (r := ready_condition())["status"] == "Unknown" and r, timeout=20,
                      what="node-2 Ready=Unknown")
    assert cond["reason"] == "NodeStatusUnknown"
    assert cond["message"] == "Kubelet stopped posting node status."
    assert c.kubectl("get", "node", "node-2", "--no-headers").stdout.split()[1] == "NotReady"
    taints = c.wait_for(lambda: c.kjson("get", "node", "node-2")["spec"].get("taints"), timeout=10,
                        what="taints")
    keys = {(t["key"], t["effect"]) for t in taints}
    assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
    assert ("node.kubernetes.io/unreachable", "NoSchedule") in keys
    # its pods (the drained deployment's, from the previous test, if any) are no longer Ready
    for p in c.kjson("get", "pods", "-n", "default", "--field-selector=spec.nodeName=node-2")["items"]:
        ready = next(x for x in p["status"]["conditions"] if x["type"] == "Ready")
        assert ready["status"] == "False"
    c.agents["node-2"] = agent(c, "node-2", c.base)
    c.wait_for(lambda: ready_condition()["status"] == "True", timeout=30, what="node-2 Ready again")
    c.wait_for(lambda: not c.kjson("get", "node", "node-2")["spec"].get("taints"), timeout=15,
               what="taints removed")
