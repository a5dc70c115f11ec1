"""The built-in node's agent as `kybern up`'s child process (as a kubelet beside
the apiserver): started with it, started again when it dies, gone with it; and
two kubelet flags of `kybern agent`: --label and the event rate limit."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import signal
import time

import psutil
import pytest

from kybern.network.podnet import cni_unavailable_reason, netns_name
from tests.conftest import children_running, start_agent, start_cluster, stop_agent, stop_cluster

pytestmark = pytest.mark.e2e


def agent_children(pid: int) -> list[psutil.Process]:
    return [p for p in children_running(psutil.Process(pid), "agent") if "agent" in p.cmdline()]


def spawn_workers(agent: psutil.Process) -> list[psutil.Process]:
    return children_running(agent, "spawnd")


def pod_phase(c, name: str) -> str:
    p = c.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}", check=False)
    return p.stdout if p.returncode == 0 else ""


def test_agent_is_a_child_restarted_when_it_dies_and_gone_with_up(tmp_path):
    c = start_cluster(tmp_path / "c")
    try:
        [agent] = agent_children(c.proc.pid)
        assert "--name" in agent.cmdline() and "node-1" in agent.cmdline()
        c.kubectl("run", "sleeper", "--image=demo:v1", "--restart=Always", "--command", "--", "sleep", "3600")
        c.wait_for(lambda: pod_phase(c, "sleeper") == "Running", timeout=60, what="pod Running")
        first = json.loads(c.kubectl("get", "pod", "sleeper", "-o", "json").stdout)
        pid_before = {p.pid for p in agent.children(recursive=True)}
        assert pid_before, "the pod's process runs under the agent"

        agent.kill()  # the agent dies: its pods die with it (PDEATHSIG) ...
        agent.wait(10)
        c.wait_for(lambda: [a for a in agent_children(c.proc.pid) if a.pid != agent.pid], timeout=30,
                   what="a new agent process")
        # ... and the new agent finds the pod's container gone and starts it again, as a kubelet would
        def restarted() -> bool:
            o = json.loads(c.kubectl("get", "pod", "sleeper", "-o", "json").stdout)
            cs = (o.get("status") or {}).get("containerStatuses") or [{}]
            return o["metadata"]["uid"] == first["metadata"]["uid"] and cs[0].get("restartCount", 0) >= 1 \
                and "running" in cs[0].get("state", {})
        c.wait_for(restarted, timeout=60, what="the pod's container running again")
        [agent2] = agent_children(c.proc.pid)
        procs = [agent2, *agent2.children(recursive=True)]

        c.proc.send_signal(signal.SIGKILL)  # kill -9 `kybern up`: nothing it started is left
        c.proc.wait(10)
        gone, alive = psutil.wait_procs(procs, timeout=10)
        assert not alive, f"left behind: {[p.cmdline() for p in alive]}"
    finally:
        stop_cluster(c)
    # its pod's network namespace outlived it (nothing was left to delete it); the next
    # agent that claims the same pod CIDR on this machine removes it, whatever its data dir
    pod_ip = first.get("status", {}).get("podIP", "")
    leftover = f"/var/run/netns/{netns_name(first['metadata']['uid'])}"
    if cni_unavailable_reason() or not os.path.exists(leftover):
        return  # no pod network namespaces here (not root, or no CNI plugins)
    c2 = start_cluster(tmp_path / "c2")
    try:
        cidr = json.loads(c2.kubectl("get", "node", "node-1", "-o", "json").stdout)["spec"].get("podCIDR", "")
        if not cidr or ipaddress.ip_address(pod_ip) not in ipaddress.ip_network(cidr):
            pytest.skip(f"the new agent took another pod CIDR ({cidr}) than the killed one's pod had ({pod_ip})")
        assert not os.path.exists(leftover)
    finally:
        stop_cluster(c2)


def test_agent_labels_and_event_rate(cluster, namespace, tmp_path):
    """`--label` labels the Node; `--event-qps/--event-burst` space the kubelet's
    events as upstream's eventRecordQPS/eventBurst do (the rest wait, none are lost)."""
    node = f"evt-{int(time.time()) % 100000}"
    a = start_agent(cluster, node, tmp_path / "agent", "--label", "tier=edge", "--label", "example.com/gpu=",
                    "--event-qps", "2", "--event-burst", "1", log=tmp_path / "agent.log")
    try:
        cluster.wait_for(lambda: node in cluster.kubectl("get", "nodes", check=False).stdout, timeout=30,
                         what="the node registered")
        labels = json.loads(cluster.kubectl("get", "node", node, "-o", "json").stdout)["metadata"]["labels"]
        assert labels["tier"] == "edge" and labels["example.com/gpu"] == ""
        assert labels["kubernetes.io/hostname"] == node

        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ev", "namespace": namespace},
                    "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [
                        {"name": n, "image": "demo:v1", "command": ["sleep", "3600"]} for n in ("a", "b")]}}
        cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))

        def kubelet_events() -> list[dict]:
            items = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
            return [e for e in items if (e.get("source") or {}).get("component") == "kubelet"
                    and e["involvedObject"].get("name") == "ev"]
        # Pulled, Created, Started for each of the two containers: all six arrive ...
        evs = cluster.wait_for(lambda: (lambda e: e if len(e) >= 6 else None)(kubelet_events()), timeout=60,
                               what="six kubelet events")
        assert sorted(e["reason"] for e in evs) == ["Created"] * 2 + ["Pulled"] * 2 + ["Started"] * 2
        # ... but one at once and then one every 0.5 s: the last stored at least 2 s after the first
        # (5 waits of 0.5 s, less the second's rounding of the timestamps). The apiserver's
        # creationTimestamp, since firstTimestamp is when the kubelet recorded it, as upstream
        stamps = sorted(dt.datetime.fromisoformat(e["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
                        for e in evs)
        assert (stamps[-1] - stamps[0]).total_seconds() >= 2
    finally:
        stop_agent(a)
        cluster.kubectl("delete", "node", node, "--wait=false", check=False)


def test_a_killed_spawn_worker_takes_its_containers_and_the_agent_restarts_them(tmp_path):
    c = start_cluster(tmp_path / "c")
    try:
        [agent] = agent_children(c.proc.pid)
        c.kubectl("run", "sleeper", "--image=demo:v1", "--restart=Always", "--command", "--", "sleep", "3600")
        c.wait_for(lambda: pod_phase(c, "sleeper") == "Running", timeout=60, what="pod Running")
        [worker] = spawn_workers(agent)
        [sleep] = [p for p in worker.children() if p.name() == "sleep"]

        worker.kill()  # the runtime's spawn worker dies: the agent kills what it started ...
        gone, alive = psutil.wait_procs([sleep], timeout=10)
        assert not alive

        def restarted() -> bool:  # ... and restarts it per restartPolicy, through a new worker
            o = json.loads(c.kubectl("get", "pod", "sleeper", "-o", "json").stdout)
            cs = (o.get("status") or {}).get("containerStatuses") or [{}]
            return cs[0].get("restartCount", 0) >= 1 and "running" in cs[0].get("state", {}) and \
                cs[0].get("lastState", {}).get("terminated", {}).get("exitCode") == 137
        c.wait_for(restarted, timeout=60, what="the container running again after exit code 137")
        [worker2] = spawn_workers(agent)
        assert worker2.pid != worker.pid
        assert [p.name() for p in worker2.children()] == ["sleep"]
    finally:
        stop_cluster(c)
