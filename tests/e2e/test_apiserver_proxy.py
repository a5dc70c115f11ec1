"""The proxy subresources as the kubernetes.io pages use them: "Node metrics data"
(`kubectl get --raw /api/v1/nodes/N/proxy/stats/summary`), "Accessing services running
on clusters" (`kubectl proxy`, then .../services/NAME:PORT/proxy/), a pod's proxy."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.e2e


def raw(cluster, path: str, check: bool = True):
    return cluster.kubectl("get", "--raw", path, check=check)


def test_node_proxy_serves_the_agents_summary_and_metrics(cluster):
    node = cluster.kjson("get", "nodes")["items"][0]["metadata"]["name"]
    summary = json.loads(raw(cluster, f"/api/v1/nodes/{node}/proxy/stats/summary").stdout)
    assert summary["node"]["nodeName"] == node
    assert summary["node"]["memory"]["workingSetBytes"] > 0
    metrics = raw(cluster, f"/api/v1/nodes/{node}/proxy/metrics/resource").stdout
    assert "# TYPE node_cpu_usage_seconds_total counter" in metrics
    assert raw(cluster, f"/api/v1/nodes/{node}/proxy/healthz").stdout == "ok"
    r = raw(cluster, "/api/v1/nodes/no-such-node/proxy/healthz", check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr
    # "Set Kubelet Parameters Via A Configuration File": the running configuration
    cfg = json.loads(raw(cluster, f"/api/v1/nodes/{node}/proxy/configz").stdout)["kubeletconfig"]
    assert cfg["maxPods"] == int(cluster.kjson("get", "node", node)["status"]["capacity"]["pods"])
    assert cfg["clusterDNS"] == ["10.96.0.10"] and cfg["clusterDomain"] == "cluster.local"
    assert cfg["nodeStatusUpdateFrequency"] == "10s" and "kind" not in cfg


def test_pod_and_service_proxy(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("create", "deployment", "web", "--image=demo:v1", "--replicas=2", "--port=80", *ns)
    cluster.kubectl("expose", "deployment", "web", "--port=8080", "--target-port=80", *ns)
    cluster.kubectl("create", "service", "clusterip", "lonely", "--tcp=80:80", *ns)
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s", *ns)
    pod = cluster.kjson("get", "pods", "-l", "app=web", *ns)["items"][0]["metadata"]["name"]
    base = f"/api/v1/namespaces/{namespace}"

    # Ready means started (no readiness probe): the server may not listen yet
    cluster.wait_for(lambda: raw(cluster, f"{base}/pods/{pod}/proxy/", check=False).returncode == 0,
                     timeout=20, what="the pod's server listening")
    assert "kybern demo v1" in raw(cluster, f"{base}/pods/{pod}/proxy/").stdout  # port 80 by default
    assert "kybern demo v1" in raw(cluster, f"{base}/pods/http:{pod}:80/proxy/index.html").stdout
    cluster.wait_for(lambda: raw(cluster, f"{base}/services/web:8080/proxy/", check=False).returncode == 0,
                     timeout=20, what="the service's endpoints")
    assert "kybern demo v1" in raw(cluster, f"{base}/services/web:8080/proxy/").stdout
    assert "kybern demo v1" in raw(cluster, f"{base}/services/web/proxy/").stdout  # its only port

    # the agent's own /metrics (the kubelet's names), through the node proxy
    node = cluster.kjson("get", "pod", pod, *ns)["spec"]["nodeName"]
    metrics = raw(cluster, f"/api/v1/nodes/{node}/proxy/metrics").stdout
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
              if line and not line.startswith("#")}
    assert values[f'kubelet_node_name{{node="{node}"}}'] == 1
    assert values["kubelet_running_pods"] >= 2 and values['kubelet_running_containers{container_state="running"}'] >= 2
    assert values["kubelet_started_pods_total"] >= 2 and values["kubelet_started_containers_total"] >= 2
    assert values["kubelet_pod_start_duration_seconds_count"] == values["kubelet_started_pods_total"]
    assert values['kubelet_pod_start_duration_seconds_bucket{le="+Inf"}'] == values["kubelet_started_pods_total"]
    assert values["process_resident_memory_bytes"] > 10_000_000

    r = raw(cluster, f"{base}/services/lonely:80/proxy/", check=False)
    assert r.returncode != 0 and 'no endpoints available for service "lonely"' in r.stderr

    # kubectl proxy: the path the tutorials give, and upstream's redirect of a bare .../proxy
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["kubectl", "proxy", f"--port={port}"], env=cluster.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}{base}/services/web:8080/proxy"
        for _ in range(50):
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:  # follows the 301 to .../proxy/
                    assert resp.status == 200
                    assert resp.url == url + "/"
                    assert "kybern demo v1" in resp.read().decode()
                break
            except urllib.error.URLError:
                time.sleep(0.1)
        else:
            raise AssertionError("kubectl proxy did not answer")
    finally:
        proc.terminate()
        proc.wait(10)
