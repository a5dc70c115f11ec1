"""CustomResourceDefinitions end to end: kubectl applies a CRD, waits for
Established, and uses the custom resource like a built-in one (printer
columns, explain, 422 with field paths, pruning, scale); a real kopf operator
(`kopf run`, from PyPI) handles a create and writes status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import start_cluster, stop_cluster

HERE = Path(__file__).parent


def crd_yaml(group: str, *, kopf: bool = False) -> str:
    status_props = "{type: object, x-kubernetes-preserve-unknown-fields: true}" if kopf else """
            type: object
            properties:
              replicas: {type: integer}
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}"""
    return f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {{}}
      scale: {{specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}}
    additionalPrinterColumns:
    - {{name: Size, type: string, jsonPath: .spec.size}}
    - {{name: Replicas, type: integer, jsonPath: .spec.replicas}}
    - {{name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}}
    - {{name: Age, type: date, jsonPath: .metadata.creationTimestamp}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {{type: string, enum: [S, M, L], description: How big the widget is.}}
              replicas: {{type: integer, minimum: 0, maximum: 10, default: 1}}
          status: {status_props}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def widget(group: str, name: str, ns: str, spec: str) -> str:
    return f"apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"


def test_crd_serves_custom_resources(cluster, namespace):
    group = "e2e.kybern.dev"
    cluster.kubectl("apply", "-f", "-", input=crd_yaml(group))
    cluster.kubectl("wait", "--for", "condition=established", f"crd/widgets.{group}", "--timeout=10s")
    crd = cluster.kjson("get", "crd", f"widgets.{group}")
    assert crd["status"]["acceptedNames"]["kind"] == "Widget"
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]} == \
        {"NamesAccepted": "True", "Established": "True"}
    try:
        cluster.kubectl("apply", "-f", "-", input=widget(group, "w1", namespace, "{size: M}"))
        w = cluster.kjson("get", f"widgets.{group}", "w1", "-n", namespace)
        assert w["spec"] == {"size": "M", "replicas": 1}  # defaulted from the schema
        assert w["metadata"]["generation"] == 1

        # printer columns, through the short name
        out = cluster.kubectl("get", "wdg", "-n", namespace).stdout.splitlines()
        assert out[0].split() == ["NAME", "SIZE", "REPLICAS", "READY", "AGE"]
        assert out[1].split()[:3] == ["w1", "M", "1"]

        # status subresource and scale; spec changes bump generation, status ones do not
        cluster.kubectl("patch", f"widgets.{group}", "w1", "-n", namespace, "--subresource=status",
                        "--type=merge", "-p", '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}')
        cluster.kubectl("scale", f"widgets.{group}", "w1", "-n", namespace, "--replicas=3")
        w = cluster.kjson("get", f"widgets.{group}", "w1", "-n", namespace)
        assert w["spec"]["replicas"] == 3 and w["metadata"]["generation"] == 2
        assert cluster.kubectl("get", "wdg", "w1", "-n", namespace, "--no-headers").stdout.split()[:4] == \
            ["w1", "M", "3", "True"]

        # kubectl explain reads the schema from OpenAPI v3
        explain = cluster.kubectl("explain", f"widgets.{group}.spec.size").stdout
        assert "How big the widget is." in explain and "ENUM" in explain

        # invalid: 422 with every field path
        bad = cluster.kubectl("apply", "-f", "-", check=False,
                              input=widget(group, "bad", namespace, "{size: XL, replicas: 11}"))
        assert bad.returncode != 0
        assert 'spec.size: Unsupported value: "XL": supported values: "S", "M", "L"' in bad.stderr
        assert "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10" \
            in bad.stderr

        # unknown fields: strict validation refuses them, otherwise they are pruned
        strict = cluster.kubectl("apply", "-f", "-", check=False,
                                 input=widget(group, "p", namespace, "{size: S, bogus: 1}"))
        assert 'strict decoding error: unknown field "spec.bogus"' in strict.stderr
        cluster.kubectl("apply", "--validate=false", "-f", "-", input=widget(group, "p", namespace,
                                                                            "{size: S, bogus: 1}"))
        assert cluster.kjson("get", f"widgets.{group}", "p", "-n", namespace)["spec"] == {"size": "S", "replicas": 1}

        # the other served version reads the same object
        other = cluster.kjson("get", f"widgets.v1beta1.{group}", "w1", "-n", namespace)
        assert other["apiVersion"] == f"{group}/v1beta1" and other["spec"]["replicas"] == 3
    finally:
        cluster.kubectl("delete", "crd", f"widgets.{group}", "--timeout=20s")
    # deleting the CRD deleted its custom resources and stopped serving them
    gone = cluster.kubectl("get", f"widgets.{group}", "-n", namespace, check=False)
    assert gone.returncode != 0


def test_kopf_operator_writes_status(cluster, namespace):
    pytest.importorskip("kopf")
    group = "kopf.e2e.kybern.dev"
    cluster.kubectl("apply", "-f", "-", input=crd_yaml(group, kopf=True))
    cluster.kubectl("wait", "--for", "condition=established", f"crd/widgets.{group}", "--timeout=10s")
    log = open(cluster.dir / f"kopf-{namespace}.log", "w")
    kopf = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "-n", namespace,
                             str(HERE / "kopf_widgets.py")], env={**cluster.env, "PYTHONUNBUFFERED": "1"},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        cluster.kubectl("apply", "-f", "-", input=widget(group, "hello", namespace, "{size: L}"))

        def status():
            st = cluster.kjson("get", f"widgets.{group}", "hello", "-n", namespace).get("status") or {}
            return st if st.get("message") else None

        st = cluster.wait_for(status, timeout=15, what="kopf to write status")
        assert st["message"] == "hello hello, size L"
        assert st["greet"] == {"handled": True}  # the handler's return value, under its id
    finally:
        kopf.terminate()
        try:
            kopf.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(kopf.pid, 9)
        log.close()
        cluster.kubectl("delete", "crd", f"widgets.{group}", "--timeout=20s", check=False)


def test_crds_are_served_again_after_a_restart(tmp_path):
    group = "restart.e2e.kybern.dev"
    c = start_cluster(tmp_path / "c", wait_node=False)
    try:
        c.kubectl("apply", "-f", "-", input=crd_yaml(group))
        c.kubectl("wait", "--for", "condition=established", f"crd/widgets.{group}", "--timeout=10s")
        c.kubectl("apply", "-f", "-", input=widget(group, "keep", "default", "{size: S}"))
    finally:
        stop_cluster(c, signal.SIGKILL)  # what was acknowledged is in storage; no need to wait for a clean stop
    c = start_cluster(tmp_path / "c", wait_node=False)
    try:
        w = c.kjson("get", f"widgets.{group}", "keep")
        assert w["spec"] == {"size": "S", "replicas": 1}
        assert c.kubectl("get", "wdg", "--no-headers").stdout.split()[:2] == ["keep", "S"]
    finally:
        stop_cluster(c)
