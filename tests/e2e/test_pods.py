"""Pods behave as on a real kubelet: probes, volumes, service env, hooks.
Each test applies a manifest with the real kubectl and watches the pod's
status, logs and events."""

from __future__ import annotations

import json

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e


def apply(cluster, ns: str, obj: dict) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(obj))


def pod(name: str, containers: list[dict], **spec) -> dict:
    for c in containers:
        c.setdefault("image", "demo:v1")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 2, "containers": containers, **spec}}


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def events(cluster, ns: str, reason: str) -> list[str]:
    out = cluster.kjson("get", "events", "-n", ns)["items"]
    return [e["message"] for e in out if e.get("reason") == reason]


def status(cluster, ns: str, name: str) -> dict:
    return cluster.kjson("get", "pod", name, "-n", ns).get("status") or {}


def cstatus(cluster, ns: str, name: str, container: str) -> dict:
    return next((s for s in status(cluster, ns, name).get("containerStatuses") or [] if s["name"] == container),
                {})


def condition(cluster, ns: str, name: str, typ: str) -> str | None:
    return next((c["status"] for c in status(cluster, ns, name).get("conditions") or [] if c["type"] == typ), None)


def logs(cluster, ns: str, name: str, container: str | None = None) -> str:
    args = ["logs", name, "-n", ns] + (["-c", container] if container else [])
    return cluster.kubectl(*args, check=False).stdout


def test_failing_liveness_probe_restarts_the_container(cluster, namespace):
    apply(cluster, namespace, pod("live", [{
        "name": "app", "command": sh("touch healthy; sleep 2; rm healthy; sleep 600"),
        "livenessProbe": {"exec": {"command": ["cat", "healthy"]}, "periodSeconds": 1, "failureThreshold": 2}}]))
    cluster.wait_for(lambda: cstatus(cluster, namespace, "live", "app").get("restartCount", 0) >= 1, timeout=30,
                     what="a restart after the liveness probe failed")
    assert any(m.startswith("Liveness probe failed: cat:") for m in events(cluster, namespace, "Unhealthy"))
    assert "Container app failed liveness probe, will be restarted" in events(cluster, namespace, "Killing")
    # as the kubelet's, these events name the container in involvedObject.fieldPath
    paths = {e["involvedObject"].get("fieldPath") for e in cluster.kjson("get", "events", "-n", namespace)["items"]
             if e.get("reason") in ("Unhealthy", "Killing", "Started")}
    assert paths == {"spec.containers{app}"}
    last = cstatus(cluster, namespace, "live", "app")["lastState"]["terminated"]
    assert last["exitCode"] in (137, 143)


def test_readiness_probe_flips_ready_and_the_pod_condition(cluster, namespace):
    port = free_port()
    apply(cluster, namespace, pod("ready", [{
        "name": "web", "env": [{"name": "PORT", "value": str(port)}],
        "command": sh("(sleep 2; echo ok > ready.html; sleep 4; rm ready.html) & exec python3 serve.py"),
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/ready.html", "port": "http"}, "periodSeconds": 1,
                           "failureThreshold": 1}}]))
    cluster.wait_for(lambda: status(cluster, namespace, "ready").get("phase") == "Running", what="Running")
    assert condition(cluster, namespace, "ready", "Ready") == "False"
    cluster.wait_for(lambda: cstatus(cluster, namespace, "ready", "web").get("ready"), timeout=15, what="ready")
    assert condition(cluster, namespace, "ready", "Ready") == "True"
    assert condition(cluster, namespace, "ready", "ContainersReady") == "True"
    cluster.wait_for(lambda: condition(cluster, namespace, "ready", "Ready") == "False", timeout=15,
                     what="not ready again")
    assert not cstatus(cluster, namespace, "ready", "web")["ready"]
    assert any("Readiness probe failed: HTTP probe failed with statuscode: 404" in m
               for m in events(cluster, namespace, "Unhealthy"))


# a gRPC health server (grpcio, installed with kybern): "kybern.test" is SERVING until a file
# "unhealthy" appears in its working dir, then NOT_SERVING
GRPC_HEALTH_SERVER = """
import os, time
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
h = health.HealthServicer()
s = grpc.server(futures.ThreadPoolExecutor(2))
health_pb2_grpc.add_HealthServicer_to_server(h, s)
s.add_insecure_port("0.0.0.0:" + os.environ["PORT"])
s.start()
R = health_pb2.HealthCheckResponse
while True:
    h.set("kybern.test", R.NOT_SERVING if os.path.exists("unhealthy") else R.SERVING)
    time.sleep(0.2)
"""


def test_grpc_probes_readiness_and_liveness(cluster, namespace):
    port, closed = free_port(), free_port()
    apply(cluster, namespace, pod("grpc-ready", [{
        "name": "srv", "env": [{"name": "PORT", "value": str(port)}],
        "command": ["python3", "-c", GRPC_HEALTH_SERVER],
        "readinessProbe": {"grpc": {"port": port, "service": "kybern.test"}, "periodSeconds": 1,
                           "failureThreshold": 1}}]))
    apply(cluster, namespace, pod("grpc-live", [{
        "name": "app", "command": ["sleep", "600"],
        "livenessProbe": {"grpc": {"port": closed}, "periodSeconds": 1, "failureThreshold": 1}}]))
    cluster.wait_for(lambda: condition(cluster, namespace, "grpc-ready", "Ready") == "True", timeout=20,
                     what="ready once the server reports SERVING")
    assert cstatus(cluster, namespace, "grpc-ready", "srv")["ready"]
    cluster.kubectl("exec", "grpc-ready", "-n", namespace, "--", "touch", "unhealthy")
    cluster.wait_for(lambda: condition(cluster, namespace, "grpc-ready", "Ready") == "False", timeout=15,
                     what="not ready once it reports NOT_SERVING")
    assert 'Readiness probe failed: service unhealthy (responded with "NOT_SERVING")' in \
        events(cluster, namespace, "Unhealthy")
    # the closed port: upstream's dial waits out timeoutSeconds (1 s), then the container is restarted
    cluster.wait_for(lambda: cstatus(cluster, namespace, "grpc-live", "app").get("restartCount", 0) >= 1,
                     timeout=30, what="a restart after the gRPC liveness probe failed")
    ip = status(cluster, namespace, "grpc-live")["podIP"]
    assert f'Liveness probe failed: timeout: failed to connect service "{ip}:{closed}" within 1s: context ' \
           f'deadline exceeded' in events(cluster, namespace, "Unhealthy")
    assert "Container app failed liveness probe, will be restarted" in events(cluster, namespace, "Killing")
    assert not any(m.startswith("Readiness probe failed") or "warning" in m
                   for m in events(cluster, namespace, "ProbeWarning"))


def test_volumes_configmap_update_emptydir_and_downward_api(cluster, namespace):
    apply(cluster, namespace, pod("vols", [
        {"name": "writer", "command": sh("echo shared-hello > $KYBERN_ROOTFS/cache/msg; sleep 600"),
         "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]},
        {"name": "reader",
         "command": sh("while true; do cat etc/config/greeting; echo; cat cache/msg; cat etc/podinfo/labels;"
                       " echo; sleep 1; done"),
         "volumeMounts": [{"name": "config", "mountPath": "/etc/config"}, {"name": "cache", "mountPath": "/cache"},
                          {"name": "podinfo", "mountPath": "/etc/podinfo"}]}],
        volumes=[{"name": "config", "configMap": {"name": "settings"}},
                 {"name": "cache", "emptyDir": {}},
                 {"name": "podinfo", "downwardAPI": {"items": [
                     {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]))
    # the ConfigMap does not exist yet: FailedMount, and the pod waits
    cluster.wait_for(lambda: any('configmap "settings" not found' in m
                                 for m in events(cluster, namespace, "FailedMount")), what="FailedMount")
    assert cstatus(cluster, namespace, "vols", "reader")["state"]["waiting"]["reason"] == "ContainerCreating"
    cluster.kubectl("create", "configmap", "settings", "-n", namespace, "--from-literal=greeting=hello")
    cluster.wait_for(lambda: "hello" in logs(cluster, namespace, "vols", "reader"), timeout=30,
                     what="the configMap file")
    out = logs(cluster, namespace, "vols", "reader")
    assert "shared-hello" in out  # written by the other container into the shared emptyDir
    assert 'app="vols"' in out
    cluster.kubectl("patch", "configmap", "settings", "-n", namespace, "-p", '{"data":{"greeting":"bonjour"}}')
    cluster.wait_for(lambda: "bonjour" in logs(cluster, namespace, "vols", "reader"), timeout=20,
                     what="the update reaching the file")


def test_service_environment_variables(cluster, namespace):
    cluster.kubectl("create", "service", "clusterip", "my-svc", "-n", namespace, "--tcp=8080:80")
    ip = cluster.kjson("get", "service", "my-svc", "-n", namespace)["spec"]["clusterIP"]
    apply(cluster, namespace, pod("envs", [{"name": "app", "command": sh("env; sleep 600"),
                                            "env": [{"name": "URL", "value": "http://$(MY_SVC_SERVICE_HOST)"}]}]))
    cluster.wait_for(lambda: "MY_SVC_SERVICE_HOST" in logs(cluster, namespace, "envs"), what="env in logs")
    env = dict(line.split("=", 1) for line in logs(cluster, namespace, "envs").splitlines() if "=" in line)
    assert env["MY_SVC_SERVICE_HOST"] == ip and env["MY_SVC_SERVICE_PORT"] == "8080"
    assert env["MY_SVC_PORT"] == f"tcp://{ip}:8080"
    assert env["MY_SVC_PORT_8080_TCP_ADDR"] == ip and env["MY_SVC_PORT_8080_TCP_PROTO"] == "tcp"
    assert env["URL"] == f"http://{ip}"
    assert "KUBERNETES_SERVICE_HOST" in env and env["KUBERNETES_SERVICE_PORT"] == "443"


def test_pre_stop_hook_runs_before_the_container_stops(cluster, namespace, tmp_path):
    out = tmp_path / "hook"
    apply(cluster, namespace, pod("hooks", [{
        "name": "app", "command": sh("sleep 600"),
        "volumeMounts": [{"name": "out", "mountPath": "/out"}],
        "lifecycle": {"postStart": {"exec": {"command": sh("echo started > out/post")}},
                      "preStop": {"exec": {"command": sh("echo stopping > out/pre")}}}}],
        volumes=[{"name": "out", "hostPath": {"path": str(out), "type": "DirectoryOrCreate"}}]))
    cluster.wait_for(lambda: status(cluster, namespace, "hooks").get("phase") == "Running", what="Running")
    assert (out / "post").read_text() == "started\n"
    cluster.kubectl("delete", "pod", "hooks", "-n", namespace, "--wait=true", timeout=30)
    assert (out / "pre").read_text() == "stopping\n"


def test_the_sandbox_image_pause_runs_and_stops_on_sigterm(cluster, namespace):
    """registry.k8s.io/pause:3.10 is on the node, as on kubeadm and kind nodes (no
    registry needed): its pod runs, and a delete with the default 30 s grace period ends
    at once, since pause exits 0 on SIGTERM."""
    import time

    cluster.kubectl("run", "sandbox", "-n", namespace, "--image=registry.k8s.io/pause:3.10")
    cluster.wait_for(lambda: status(cluster, namespace, "sandbox").get("phase") == "Running", what="Running")
    t0 = time.monotonic()
    cluster.kubectl("delete", "pod", "sandbox", "-n", namespace)
    assert time.monotonic() - t0 < 10


def test_set_image_on_a_pod_restarts_its_container_with_the_new_image(cluster, namespace):
    """`kubectl set image pod/NAME c=IMAGE` (a pod update may change an image): the
    kubelet kills the container, "definition changed", and starts it again with the new
    image at once, restartPolicy Never included."""
    apply(cluster, namespace, pod("swap", [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"]}],
                                  restartPolicy="Never"))
    cluster.wait_for(lambda: status(cluster, namespace, "swap").get("phase") == "Running", what="Running")
    cluster.kubectl("set", "image", "pod/swap", "c=update-demo:kitten", "-n", namespace)

    def swapped() -> dict | None:
        cs = cstatus(cluster, namespace, "swap", "c")
        return cs if "kitten" in cs.get("image", "") and "running" in cs.get("state", {}) else None
    cs = cluster.wait_for(swapped, timeout=30, what="the container running the new image")
    assert cs["restartCount"] == 1 and "terminated" in cs["lastState"]
    events = cluster.kjson("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=swap")["items"]
    assert "Container c definition changed, will be restarted" in [e["message"] for e in events if
                                                                   e["reason"] == "Killing"]
