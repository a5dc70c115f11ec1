"""The `fake` runtime (hollow nodes for scale tests): an agent that runs no
processes joins, and pods scheduled on it behave as running pods do through the
API — Running and Ready, deleted cleanly; containers asked to exit do."""

from __future__ import annotations

import json

import pytest

from tests.conftest import start_agent, start_cluster, stop_agent, stop_cluster

pytestmark = pytest.mark.e2e

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "hollow"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "hollow"}},
        "template": {
            "metadata": {"labels": {"app": "hollow"}},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": "hollow-1"},
                # an init container must finish: the fake runtime is told to exit it
                "initContainers": [{"name": "setup", "image": "busybox:1.36", "command": ["true"],
                                    "env": [{"name": "KYBERN_FAKE_EXIT_CODE", "value": "0"}]}],
                "containers": [{
                    "name": "web", "image": "nginx:1.27", "command": ["/definitely/not/here"],
                    "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
                }],
            },
        },
    },
}


def test_hollow_agent_runs_a_deployment(tmp_path):
    c = start_cluster(tmp_path / "c")
    agent = start_agent(c, "hollow-1", tmp_path / "hollow-1", "--runtime", "fake",
                        log=tmp_path / "hollow-1.log")
    try:
        c.wait_for(lambda: "Ready" in c.kubectl("get", "node", "hollow-1", "--no-headers", check=False).stdout.split(),
                   timeout=40, what="hollow node Ready")
        node = c.kjson("get", "node", "hollow-1")
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("fake://")

        c.kubectl("apply", "-f", "-", input=json.dumps(DEPLOYMENT))
        c.kubectl("rollout", "status", "deployment/hollow", "--timeout=60s")
        pods = c.kjson("get", "pods", "-l", "app=hollow")["items"]
        assert len(pods) == 3
        for p in pods:
            assert p["spec"]["nodeName"] == "hollow-1"
            assert p["status"]["phase"] == "Running"
            conds = {x["type"]: x["status"] for x in p["status"]["conditions"]}
            assert conds["Ready"] == "True" and conds["Initialized"] == "True"
            init = p["status"]["initContainerStatuses"][0]
            assert init["state"]["terminated"]["reason"] == "Completed"
            cs = p["status"]["containerStatuses"][0]
            assert cs["ready"] and "running" in cs["state"]
            assert cs["containerID"].startswith("fake://")
            assert cs["restartCount"] == 0  # a command that exists nowhere still "runs"

        # a container told to fail does, and the pod reports it as a real one would
        c.kubectl("run", "fails", "--image=busybox:1.36", "--restart=Never",
                  "--overrides", json.dumps({"spec": {"nodeSelector": {"kubernetes.io/hostname": "hollow-1"}}}),
                  "--env=KYBERN_FAKE_EXIT_CODE=3", "--", "false")
        c.wait_for(lambda: c.kubectl("get", "pod", "fails", "-o", "jsonpath={.status.phase}").stdout == "Failed",
                   timeout=40, what="pod fails Failed")
        term = c.kjson("get", "pod", "fails")["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 3 and term["reason"] == "Error"

        c.kubectl("delete", "pod", pods[0]["metadata"]["name"], "--timeout=30s")  # graceful delete completes
        c.kubectl("delete", "deployment", "hollow")
        c.wait_for(lambda: c.kubectl("get", "pods", "-l", "app=hollow", "--no-headers").stdout.strip() == "",
                   timeout=40, what="hollow pods gone")
        c.kubectl("delete", "pod", "fails", "--timeout=30s")
        assert agent.poll() is None, (tmp_path / "hollow-1.log").read_text()
    finally:
        stop_agent(agent)
        stop_cluster(c)


def test_up_with_fake_runtime(tmp_path):
    c = start_cluster(tmp_path / "c", "--runtime", "fake", "--no-dns")
    try:
        c.kubectl("run", "idle", "--image=demo:v1", "--", "sleep", "3600")
        c.kubectl("wait", "pod/idle", "--for=condition=Ready", "--timeout=40s")
        assert c.kjson("get", "pod", "idle")["status"]["containerStatuses"][0]["containerID"].startswith("fake://")
        c.kubectl("delete", "pod", "idle", "--timeout=30s")
    finally:
        stop_cluster(c)
