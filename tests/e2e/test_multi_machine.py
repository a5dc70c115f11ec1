"""A node on another machine, with the CNI pod network: the second "machine" is a
network namespace joined to the host by a veth pair (its own interfaces, routes,
bridge and kernel service rules, as a host on one L2 segment). Each agent routes
the other node's podCIDR via its InternalIP (flannel's host-gw), so pods reach
pods and Services across machines; deleting the Node removes its route."""

from __future__ import annotations

import json
import subprocess

import pytest

from kybern.network.podnet import cni_unavailable_reason
from tests.conftest import peer_netns, start_agent, start_cluster, stop_agent, stop_cluster

REASON = cni_unavailable_reason()
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(bool(REASON), reason=f"pod networking needs root and the plugins: {REASON}")]

NS, HOST_END, NS_END = "kyb-machine2", "kyb-mach2h", "kyb-mach2n"
HOST_IP, OTHER_IP = "10.199.77.1", "10.199.77.2"


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


@pytest.fixture
def machine2():
    with peer_netns(NS, HOST_END, NS_END, f"{HOST_IP}/24", f"{OTHER_IP}/24") as inside:
        sh(*inside, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield inside


def test_pods_and_services_across_machines(tmp_path, machine2):
    c = start_cluster(tmp_path / "c", "--address", HOST_IP, "--pod-network", "cni")
    agent = None
    try:
        agent = start_agent(c, "machine-2", tmp_path / "m2", "--address", OTHER_IP, "--pod-network", "cni",
                            log=tmp_path / "m2.log", wrap=machine2)
        c.wait_for(lambda: "machine-2" in c.kubectl("get", "nodes", check=False).stdout, timeout=30,
                   what="the second machine's node")
        cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in c.kjson("get", "nodes")["items"]}
        assert cidrs["node-1"] != cidrs["machine-2"]
        c.wait_for(lambda: f"{cidrs['machine-2']} via {OTHER_IP}" in sh("ip", "route", "show", "proto", "77"),
                   timeout=15, what="this machine's route to the other machine's pods")
        c.wait_for(lambda: f"{cidrs['node-1']} via {HOST_IP}" in sh(*machine2, "ip", "route", "show", "proto", "77"),
                   timeout=15, what="the other machine's route to this one's pods")

        for node in ("node-1", "machine-2"):
            c.kubectl("run", f"web-{node}", "--image=demo:v1", "--labels", f"app=web-{node}",
                      "--overrides", json.dumps({"apiVersion": "v1", "spec": {"nodeName": node}}))
        c.kubectl("wait", "--for=condition=Ready", "pod/web-node-1", "pod/web-machine-2", "--timeout=60s")
        ips = {n: c.kjson("get", "pod", f"web-{n}")["status"]["podIP"] for n in ("node-1", "machine-2")}

        def fetch(from_pod: str, url: str) -> str:
            return c.kubectl("exec", from_pod, "--", "python3", "-c",
                             f"import urllib.request; print(urllib.request.urlopen('{url}', timeout=5).read()[:40])"
                             ).stdout
        assert "DOCTYPE" in fetch("web-node-1", f"http://{ips['machine-2']}/")
        assert "DOCTYPE" in fetch("web-machine-2", f"http://{ips['node-1']}/")
        c.kubectl("expose", "pod", "web-machine-2", "--port", "8080", "--target-port", "80", "--name", "remote")
        vip = c.kjson("get", "service", "remote")["spec"]["clusterIP"]
        c.wait_for(lambda: c.kjson("get", "endpoints", "remote").get("subsets"), timeout=15, what="endpoints")
        c.wait_for(lambda: "DOCTYPE" in fetch("web-node-1", f"http://{vip}:8080/"), timeout=15,
                   what="a Service whose pod is on the other machine")

        stop_agent(agent)
        c.kubectl("delete", "pod", "web-machine-2", "--force", "--grace-period=0")
        c.kubectl("delete", "node", "machine-2")
        c.wait_for(lambda: cidrs["machine-2"] not in sh("ip", "route", "show", "proto", "77"), timeout=15,
                   what="the deleted node's route removed")
    finally:
        if agent is not None:
            stop_agent(agent)
        stop_cluster(c)
