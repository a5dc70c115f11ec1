"""The walking skeleton, as a user runs it: kubectl against `kybern up`."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_one_node_is_ready(cluster):
    nodes = cluster.kjson("get", "nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["node-1"]
    ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}
    assert ready["Ready"] == "True"
    out = cluster.kubectl("get", "nodes").stdout
    assert out.split("\n")[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert "Ready" in out.split("\n")[1].split()


def test_deployment_runs_logs_and_goes_away(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("create", "deployment", "web", "--image=demo:v1", "--replicas=3", *ns,
                    "--", "python3", "-c",
                    "import http.server,sys; print('serving', flush=True); "
                    "http.server.HTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler).serve_forever()")

    def running():
        pods = cluster.kjson("get", "pods", *ns)["items"]
        phases = [p["status"].get("phase") for p in pods]
        return len(pods) == 3 and all(ph == "Running" for ph in phases) and pods
    pods = cluster.wait_for(running, timeout=30, what="3 pods Running")
    assert all(p["spec"]["nodeName"] == "node-1" for p in pods)
    wide = cluster.kubectl("get", "pods", "-o", "wide", *ns).stdout.splitlines()
    assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert all("Running" in line and "node-1" in line for line in wide[1:]) and len(wide) == 4

    cluster.wait_for(lambda: "serving" in cluster.kubectl("logs", "deploy/web", *ns, check=False).stdout,
                     timeout=15, what="logs")
    cluster.wait_for(lambda: cluster.kjson("get", "deployment", "web", *ns)["status"].get("readyReplicas") == 3,
                     timeout=20, what="deployment ready")
    rs = cluster.kjson("get", "replicasets", *ns)["items"]
    assert len(rs) == 1 and rs[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"

    cluster.kubectl("delete", "deployment", "web", *ns)
    cluster.wait_for(lambda: not cluster.kjson("get", "replicasets", *ns)["items"], timeout=20,
                     what="replicaset gone")
    cluster.wait_for(lambda: not cluster.kjson("get", "pods", *ns)["items"], timeout=40, what="pods gone")


def test_missing_image_backs_off(cluster, namespace):
    cluster.kubectl("run", "ghost", "--image=no-such-image:v9", "-n", namespace, "--restart=Never",
                    "--command", "--", "true")

    def waiting_reason():
        pod = cluster.kjson("get", "pod", "ghost", "-n", namespace)
        for cs in pod["status"].get("containerStatuses") or []:
            w = (cs.get("state") or {}).get("waiting") or {}
            if w.get("reason") == "ImagePullBackOff":
                return w
        return None
    cluster.wait_for(waiting_reason, timeout=40, what="ImagePullBackOff")
    events = cluster.kjson("get", "events", "-n", namespace)["items"]
    reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "ghost"}
    assert "Failed" in reasons and "BackOff" in reasons


def test_python_client_lists_and_watches(cluster, namespace):
    from kubernetes import client, watch

    api = client.CoreV1Api(cluster.api_client())
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"a": "1"})
    created = api.create_namespaced_config_map(namespace, cm)
    assert created.metadata.uid and created.metadata.resource_version
    api.patch_namespaced_config_map("settings", namespace, {"data": {"a": "2"}})
    w = watch.Watch()
    seen = []
    for ev in w.stream(api.list_namespaced_config_map, namespace,
                       resource_version=created.metadata.resource_version, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].data))
        if ev["type"] == "MODIFIED":
            w.stop()
    assert ("MODIFIED", {"a": "2"}) in seen
    names = [c.metadata.name for c in api.list_namespaced_config_map(namespace).items]
    assert "settings" in names
