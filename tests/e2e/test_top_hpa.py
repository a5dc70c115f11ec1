"""Resource metrics and autoscaling on a private cluster with short windows
(stats sampled every second, HPA sync every 2 s, a 4 s downscale window):
`kubectl top nodes/pods` print numbers; `kubectl autoscale` on a Deployment
whose pods burn CPU while a ConfigMap says so scales it up to --max, and back
to --min once the load stops."""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import start_cluster, stop_cluster

pytestmark = pytest.mark.e2e

FAST = {"KYBERN_STATS_INTERVAL": "1", "KYBERN_HPA_SYNC_PERIOD": "2", "KYBERN_HPA_DOWNSCALE_STABILIZATION": "4"}

BURNER = """
import os, time
p = os.environ["KYBERN_ROOTFS"] + "/etc/load/burn"
while True:
    try:
        on = open(p).read().strip() == "1"
    except OSError:
        on = False
    end = time.time() + 0.5
    if on:
        while time.time() < end:
            pass
    else:
        time.sleep(0.5)
"""

MANIFEST = [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "load"}, "data": {"burn": "0"}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "burner"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "burner"}},
                  "template": {"metadata": {"labels": {"app": "burner"}}, "spec": {
                      "terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "burner", "image": "demo:v1", "command": ["python3", "-c", BURNER],
                                      "resources": {"requests": {"cpu": "100m"}},
                                      "volumeMounts": [{"name": "load", "mountPath": "/etc/load"}]}],
                      "volumes": [{"name": "load", "configMap": {"name": "load"}}]}}}}]


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    saved = {k: os.environ.get(k) for k in FAST}
    os.environ.update(FAST)
    try:
        c = start_cluster(tmp_path_factory.mktemp("tophpa"))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield c
    stop_cluster(c)


def replicas(c) -> int:
    return c.kjson("get", "deployment", "burner")["spec"]["replicas"]


def test_top_and_autoscale_up_and_down(fast) -> None:
    import json

    c = fast
    # kubectl top nodes: metrics.k8s.io is discovered and answered from the agent
    c.wait_for(lambda: re.search(r"node-1\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%",
                                 c.kubectl("top", "nodes", check=False).stdout), timeout=15, what="top nodes")
    for obj in MANIFEST:  # one by one: a `kind: List` makes kubectl validate against OpenAPI v2 protobuf
        c.kubectl("apply", "-f", "-", input=json.dumps(obj))
    c.wait_for(lambda: re.search(r"burner-\S+\s+\d+m\s+\d+Mi", c.kubectl("top", "pods", check=False).stdout),
               timeout=30, what="top pods")
    out = c.kubectl("top", "pods", "-A", "--containers", "-l", "app=burner").stdout
    assert re.search(r"default\s+burner-\S+\s+burner\s+\d+m\s+\d+Mi", out), out
    pm = json.loads(c.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods").stdout)
    assert pm["kind"] == "PodMetricsList" and pm["items"][0]["window"].endswith("s")
    assert "not found" in c.kubectl("top", "pod", "nope", check=False).stderr

    c.kubectl("autoscale", "deployment", "burner", "--cpu-percent=50", "--min=1", "--max=4")
    c.wait_for(lambda: "ValidMetricFound" in c.kubectl("describe", "hpa", "burner").stdout, timeout=20,
               what="the HPA reading metrics")
    c.kubectl("patch", "configmap", "load", "-p", '{"data":{"burn":"1"}}')
    c.wait_for(lambda: replicas(c) == 4, timeout=40, what="scale up to --max")
    hpa = c.kjson("get", "hpa.v2.autoscaling", "burner")
    assert hpa["status"]["desiredReplicas"] == 4 and hpa["status"].get("lastScaleTime")
    assert hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] > 50
    events = c.kubectl("get", "events", "--field-selector", "reason=SuccessfulRescale").stdout
    assert "New size: 4; reason: cpu resource utilization (percentage of request) above target" in events
    v1 = json.loads(c.kubectl("get", "--raw",
                              "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/burner").stdout)
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50 and "currentCPUUtilizationPercentage" in v1["status"]

    c.kubectl("patch", "configmap", "load", "-p", '{"data":{"burn":"0"}}')
    c.wait_for(lambda: replicas(c) == 1, timeout=40, what="scale down to --min")
    assert "New size: 1; reason: All metrics below target" in c.kubectl(
        "get", "events", "--field-selector", "reason=SuccessfulRescale").stdout
    conds = {x["type"]: x for x in c.kjson("get", "hpa", "burner")["status"]["conditions"]}
    assert conds["AbleToScale"]["status"] == "True" and conds["ScalingActive"]["reason"] == "ValidMetricFound"
