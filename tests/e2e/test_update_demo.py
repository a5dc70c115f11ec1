"""The update-demo story from the Kubernetes docs, as a user runs it with kubectl:
deploy nautilus, scale to 4, update to an image that does not exist (the rollout
stalls, old pods keep serving), undo, then update to kitten and complete."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: update-demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: update-demo}}
  template:
    metadata: {labels: {app: update-demo}}
    spec:
      containers:
      - name: update-demo
        image: update-demo:nautilus
        env: [{name: PORT, value: "18080"}]
        ports: [{containerPort: 18080}]
        readinessProbe: {httpGet: {path: /data.json, port: 18080}, periodSeconds: 1}
"""


def _images(cluster, ns):
    pods = cluster.kjson("get", "pods", "-n", ns, "-l", "app=update-demo")["items"]
    return [(p["spec"]["containers"][0]["image"], p["status"].get("phase"), p["metadata"].get("deletionTimestamp"))
            for p in pods]


def _served_image(cluster, ns):
    pod = next(p for p in cluster.kjson("get", "pods", "-n", ns, "-l", "app=update-demo")["items"]
               if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running")
    out = cluster.kubectl("exec", pod["metadata"]["name"], "-n", ns, "--", "python3", "-c",
                          "import urllib.request;print(urllib.request.urlopen("
                          "'http://127.0.0.1:18080/data.json').read().decode())").stdout
    return json.loads(out)["image"]


def test_update_demo_story(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=DEPLOY)
    cluster.kubectl("scale", "deployment/update-demo", "--replicas=4", *ns)
    cluster.kubectl("rollout", "status", "deployment/update-demo", *ns, "--timeout=60s")
    assert _served_image(cluster, namespace) == "nautilus.jpg"

    # an image that does not exist: new pods back off, the rollout stalls, old pods keep serving
    cluster.kubectl("set", "image", "deployment/update-demo", "update-demo=update-demo:kitty", *ns)

    def backing_off():
        pods = cluster.kjson("get", "pods", *ns, "-l", "app=update-demo")["items"]
        return any(((cs.get("state") or {}).get("waiting") or {}).get("reason") in ("ImagePullBackOff",
                                                                                    "ErrImagePull")
                   for p in pods for cs in p["status"].get("containerStatuses") or []
                   if p["spec"]["containers"][0]["image"] == "update-demo:kitty")
    cluster.wait_for(backing_off, timeout=40, what="kitty pods in ImagePullBackOff")
    stalled = cluster.kubectl("rollout", "status", "deployment/update-demo", *ns, "--timeout=3s", check=False)
    assert stalled.returncode != 0
    dep = cluster.kjson("get", "deployment", "update-demo", *ns)
    assert dep["status"].get("availableReplicas", 0) >= 3  # maxUnavailable 25% of 4
    running_old = [i for i in _images(cluster, namespace) if i[0] == "update-demo:nautilus" and i[1] == "Running"]
    assert len(running_old) >= 3
    assert _served_image(cluster, namespace) == "nautilus.jpg"

    # undo brings nautilus back everywhere
    cluster.kubectl("rollout", "undo", "deployment/update-demo", *ns)
    cluster.kubectl("rollout", "status", "deployment/update-demo", *ns, "--timeout=60s")
    cluster.wait_for(lambda: {i[0] for i in _images(cluster, namespace) if not i[2]} == {"update-demo:nautilus"},
                     timeout=30, what="only nautilus pods")

    # kitten exists: the rollout completes
    cluster.kubectl("set", "image", "deployment/update-demo", "update-demo=update-demo:kitten", *ns)
    cluster.kubectl("rollout", "status", "deployment/update-demo", *ns, "--timeout=90s")
    cluster.wait_for(lambda: {i[0] for i in _images(cluster, namespace) if not i[2]} == {"update-demo:kitten"},
                     timeout=30, what="only kitten pods")
    assert _served_image(cluster, namespace) == "kitten.jpg"
    assert len([i for i in _images(cluster, namespace) if not i[2]]) == 4

    described = cluster.kubectl("describe", "deployment", "update-demo", *ns).stdout
    assert described.count("ScalingReplicaSet") >= 4
    history = cluster.kubectl("rollout", "history", "deployment/update-demo", *ns).stdout
    assert len([line for line in history.splitlines() if line[:1].isdigit()]) >= 3
