"""A rollout that cannot progress is reported as upstream does:
Progressing=False with reason ProgressDeadlineExceeded, and `kubectl rollout
status` fails saying so."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  replicas: 1
  progressDeadlineSeconds: 2
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      containers: [{name: c, image: "no-such-image:v1", command: [sleep, "60"]}]
"""


def test_progress_deadline_exceeded(cluster, namespace):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOY)

    def progressing():
        conds = cluster.kjson("get", "deployment", "stuck", "-n", namespace)["status"].get("conditions") or []
        return next((c for c in conds if c["type"] == "Progressing" and c["status"] == "False"), None)
    cond = cluster.wait_for(progressing, timeout=30, what="Progressing=False")
    assert cond["reason"] == "ProgressDeadlineExceeded"
    assert cond["message"].startswith('ReplicaSet "stuck-') and "has timed out progressing" in cond["message"]
    p = cluster.kubectl("rollout", "status", "deployment/stuck", "-n", namespace, "--timeout=10s", check=False)
    assert p.returncode != 0 and 'deployment "stuck" exceeded its progress deadline' in p.stderr
