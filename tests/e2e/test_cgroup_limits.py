"""Resource limits enforced through real cgroups (root only): a container that
allocates past its memory limit is OOMKilled (exit code 137) and restarted; a
container limited to 100m of CPU that spins uses about a tenth of a core as
`kubectl top` / the metrics API report it; the pod's cgroups are gone once the
pod is deleted. Stats are sampled every second (KYBERN_STATS_INTERVAL=1)."""

from __future__ import annotations

import json
import os

import pytest

from kybern.node.quantity import parse_quantity
from kybern.node.runtimes.cgroups import Cgroups
from tests.conftest import start_cluster, stop_cluster

pytestmark = pytest.mark.e2e

if os.geteuid() != 0 or not Cgroups("kybern-probe").enabled:
    pytest.skip("needs root and a cgroup hierarchy with the cpu and memory controllers",
                allow_module_level=True)


def pod(name: str, command: list[str], limits: dict[str, str], restart: str = "Always") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "demo:v1", "command": command,
                                     "resources": {"limits": limits}}]}}


@pytest.fixture(scope="module")
def cl(tmp_path_factory):
    saved = os.environ.get("KYBERN_STATS_INTERVAL")
    os.environ["KYBERN_STATS_INTERVAL"] = "1"
    try:
        c = start_cluster(tmp_path_factory.mktemp("cgroups"))
    finally:
        if saved is None:
            os.environ.pop("KYBERN_STATS_INTERVAL", None)
        else:
            os.environ["KYBERN_STATS_INTERVAL"] = saved
    # the agent of `kybern up` is node-1 with its data in <data>/node: its cgroups
    c.cgroups = Cgroups.for_node("node-1", c.dir / "data" / "node")
    yield c
    stop_cluster(c)


def pod_cgroup_dirs(c, uid: str) -> list[str]:
    rel = c.cgroups.find_pod(uid)
    return [str(d) for d in c.cgroups.dirs(rel) if d.is_dir()] if rel else []


def test_memory_limit_oomkills_and_restarts(cl) -> None:
    c = cl
    c.kubectl("apply", "-f", "-", input=json.dumps(pod(
        "hog", ["python3", "-c", "b = b'x' * (200 * 1024 * 1024); print('not killed')"], {"memory": "50Mi"})))

    def restarted():
        st = c.kjson("get", "pod", "hog")["status"]["containerStatuses"][0]
        return st if st["restartCount"] >= 1 and "terminated" in st.get("lastState", {}) else None

    st = c.wait_for(restarted, timeout=60, what="an OOM kill and a restart")
    term = st["lastState"]["terminated"]
    assert term["reason"] == "OOMKilled", st
    assert term["exitCode"] == 137, st
    assert "not killed" not in c.kubectl("logs", "hog", "--previous").stdout
    p = c.kjson("get", "pod", "hog")
    assert p["status"]["qosClass"] == "Burstable"  # requests default to limits: memory only
    # the pod's cgroup exists while the pod does, and is gone after deletion
    uid = p["metadata"]["uid"]
    assert pod_cgroup_dirs(c, uid), "no cgroup for the pod"
    c.kubectl("delete", "pod", "hog", "--wait=true", timeout=60)
    c.wait_for(lambda: not pod_cgroup_dirs(c, uid), timeout=30, what="the pod's cgroups to be removed")


def test_cpu_limit_caps_usage(cl) -> None:
    c = cl
    c.kubectl("apply", "-f", "-", input=json.dumps(pod(
        "spinner", ["python3", "-c", "while True: pass"], {"cpu": "100m", "memory": "64Mi"})))
    c.wait_for(lambda: c.kjson("get", "pod", "spinner")["status"].get("phase") == "Running",
               timeout=60, what="spinner running")
    p = c.kjson("get", "pod", "spinner")
    assert p["status"]["qosClass"] == "Guaranteed"
    uid = p["metadata"]["uid"]
    assert c.cgroups.find_pod(uid) == f"kubepods/pod{uid}"  # Guaranteed pods sit right under kubepods

    seen: list[float] = []

    def sample():
        raw = c.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/spinner",
                        check=False)
        if raw.returncode != 0:
            return False
        cpu = float(parse_quantity(json.loads(raw.stdout)["containers"][0]["usage"]["cpu"]))
        if not seen or cpu != seen[-1]:
            seen.append(cpu)
        return len(seen) >= 4

    c.wait_for(sample, timeout=60, interval=1.0, what="four CPU usage samples")
    mean = sum(seen) / len(seen)
    print(f"spinner limited to 100m, CPU samples (cores): {seen}")
    assert mean <= 0.15, seen  # an unlimited spinner would use a whole core
    assert max(seen) <= 0.25, seen
    top = c.kubectl("top", "pod", "spinner", "--no-headers").stdout.split()
    assert top[0] == "spinner" and int(top[1].rstrip("m")) <= 150, top

    c.kubectl("delete", "pod", "spinner", "--wait=true", timeout=60)
    c.wait_for(lambda: not pod_cgroup_dirs(c, uid), timeout=30, what="the pod's cgroups to be removed")


def test_cgroups_removed_when_the_agent_stops(tmp_path) -> None:
    c = start_cluster(tmp_path)
    try:
        c.kubectl("apply", "-f", "-", input=json.dumps(pod("sleeper", ["sleep", "300"], {"memory": "32Mi"})))
        c.wait_for(lambda: c.kjson("get", "pod", "sleeper")["status"].get("phase") == "Running",
                   timeout=60, what="sleeper running")
        cg = Cgroups.for_node("node-1", c.dir / "data" / "node")
        assert any(d.is_dir() for d in cg.dirs(""))
    finally:
        stop_cluster(c)
    assert not any(d.exists() for d in cg.dirs("")), "the agent left cgroups behind"
