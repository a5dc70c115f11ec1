"""Bad input gets the Status error kube-apiserver would give, and the server
keeps serving."""

from __future__ import annotations

import json
import ssl
import urllib.request

import pytest
import yaml

pytestmark = pytest.mark.e2e


def _request(cluster, method, path, body=None, ctype="application/json"):
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    user = next(u for u in cfg["users"] if u["name"] == "kybern-admin")["user"]
    ctx = ssl.create_default_context(cafile=str(cluster.dir / "data" / "pki" / "ca.crt"))
    req = urllib.request.Request(cluster.server + path, data=body, method=method,
                                 headers={"Authorization": f"Bearer {user['token']}", "Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.mark.parametrize("body", [b"{", b"{\"metadata\": ", b"not json at all", b"[1, 2", b"\xff\xfe"])
def test_malformed_json_is_400(cluster, namespace, body):
    code, st = _request(cluster, "POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
    assert code == 400 and st["kind"] == "Status" and st["reason"] == "BadRequest"


def test_malformed_yaml_is_400(cluster, namespace):
    code, st = _request(cluster, "POST", f"/api/v1/namespaces/{namespace}/configmaps", b"a: [b\n  c: d:",
                        "application/yaml")
    assert code == 400 and st["reason"] == "BadRequest"


def test_unknown_resource_is_404(cluster):
    code, st = _request(cluster, "GET", "/api/v1/namespaces/default/widgets")
    assert code == 404 and st["kind"] == "Status" and st["reason"] == "NotFound"
    p = cluster.kubectl("get", "widgets", check=False)
    assert p.returncode != 0 and "the server doesn't have a resource type \"widgets\"" in p.stderr


def test_invalid_object_is_422_with_every_field(cluster, namespace):
    body = json.dumps({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": "Bad_Name"},
                       "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "x"}},
                                "template": {"metadata": {"labels": {"app": "y"}},
                                             "spec": {"containers": [{"name": "c"}]}}}}).encode()
    code, st = _request(cluster, "POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body)
    assert code == 422 and st["reason"] == "Invalid"
    fields = {c["field"] for c in st["details"]["causes"]}
    assert {"metadata.name", "spec.replicas", "spec.template.metadata.labels",
            "spec.template.spec.containers[0].image"} <= fields


def test_annotation_keys_and_size_are_validated(cluster, namespace):
    """kubectl annotate with a key that is no qualified name, or annotations over
    256 KiB in all: 422 with apimachinery's ValidateAnnotations messages."""
    cluster.kubectl("create", "configmap", "c", "-n", namespace)
    p = cluster.kubectl("annotate", "configmap", "c", "-n", namespace, "bad key=1", check=False)
    assert p.returncode != 0
    assert p.stderr.strip() == (
        'The ConfigMap "c" is invalid: metadata.annotations: Invalid value: "bad key": name part must consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
        "'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?"
        "[A-Za-z0-9]')")
    # case does not matter (checked lower-cased): an upper-case prefix is fine
    cluster.kubectl("annotate", "configmap", "c", "-n", namespace, "Example.COM/Key=1")
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "big", "annotations": {"a": "x" * (256 * 1024)}}}
    code, st = _request(cluster, "POST", f"/api/v1/namespaces/{namespace}/configmaps", json.dumps(body).encode())
    assert code == 422
    assert st["details"]["causes"] == [{"reason": "FieldValueTooLong", "field": "metadata.annotations",
                                        "message": "Too long: may not be more than 262144 bytes"}]
    # label keys get IsQualifiedName's own reasons (prefix, length), as upstream
    p = cluster.kubectl("label", "configmap", "c", "-n", namespace, "Example.com/x=1", check=False)
    assert ('metadata.labels: Invalid value: "Example.com/x": prefix part a lowercase RFC 1123 subdomain '
            "must consist of lower case alphanumeric characters") in p.stderr
    # generateName is checked as a prefix (a trailing '-' is fine, a trailing '.' is not)
    p = cluster.kubectl("create", "-n", namespace, "-f", "-", check=False, input=json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "a."}}))
    assert p.returncode != 0
    assert 'metadata.generateName: Invalid value: "a.": a lowercase RFC 1123 subdomain must consist' in p.stderr
    # a pod template's labels and annotations too (ValidatePodTemplateSpec): refused up front, not
    # left to fail creating every pod
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
              "spec": {"selector": {"matchLabels": {"app": "d"}},
                       "template": {"metadata": {"labels": {"app": "d", "bad key": "x"},
                                                 "annotations": {"x/y/z": "1"}},
                                    "spec": {"containers": [{"name": "c", "image": "demo:v1"}]}}}}
    p = cluster.kubectl("create", "-n", namespace, "-f", "-", check=False, input=json.dumps(deploy))
    assert p.returncode != 0
    assert 'spec.template.metadata.labels: Invalid value: "bad key": name part must consist of' in p.stderr
    assert ('spec.template.metadata.annotations: Invalid value: "x/y/z": a qualified name must consist of '
            "alphanumeric characters") in p.stderr


def test_pod_spec_is_checked_as_validatepodspec(cluster, namespace):
    """A mount naming no volume, a bad env name in a Deployment's template: refused
    with kube-apiserver's own message, not stored to fail on the node."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "demo:v1",
                                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}
    p = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False, input=json.dumps(pod))
    assert p.returncode != 0
    assert p.stderr.strip() == ('The Pod "p" is invalid: spec.containers[0].volumeMounts[0].name: '
                                'Not found: "data"')
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
              "spec": {"selector": {"matchLabels": {"app": "d"}},
                       "template": {"metadata": {"labels": {"app": "d"}},
                                    "spec": {"containers": [{"name": "c", "image": "demo:v1",
                                                             "env": [{"name": "A=B", "value": "1"}]}]}}}}
    p = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False, input=json.dumps(deploy))
    assert p.returncode != 0
    assert p.stderr.strip() == (
        'The Deployment "d" is invalid: spec.template.spec.containers[0].env[0].name: Invalid value: "A=B": '
        "a valid environment variable name must consist only of printable ASCII characters other than '='")
    assert cluster.kubectl("get", "deploy,pods", "-n", namespace, "-o", "name").stdout.strip() == ""


def test_conflicts_and_not_found(cluster, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    code, cm = _request(cluster, "POST", path, json.dumps({"metadata": {"name": "c"}}).encode())
    assert code == 201
    code, st = _request(cluster, "POST", path, json.dumps({"metadata": {"name": "c"}}).encode())
    assert code == 409 and st["reason"] == "AlreadyExists"
    stale = dict(cm, data={"x": "1"})
    code, _ = _request(cluster, "PUT", f"{path}/c", json.dumps(stale).encode())
    assert code == 200
    code, st = _request(cluster, "PUT", f"{path}/c", json.dumps(dict(cm, data={"x": "2"})).encode())
    assert code == 409 and st["reason"] == "Conflict"
    code, st = _request(cluster, "GET", f"{path}/nope")
    assert code == 404 and st["reason"] == "NotFound" and st["details"]["name"] == "nope"


def test_unsupported_media_type_and_too_large(cluster, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    code, st = _request(cluster, "POST", path, b"<xml/>", "application/xml")
    assert code == 415 and st["reason"] == "UnsupportedMediaType"
    big = json.dumps({"metadata": {"name": "big"}, "data": {"k": "x" * (3 * 1024 * 1024 + 10)}}).encode()
    code, st = _request(cluster, "POST", path, big)
    assert code == 413 and st["reason"] == "RequestEntityTooLarge"
    # and the server still serves
    code, _ = _request(cluster, "GET", path)
    assert code == 200


def test_large_bodies_arrive_whole(cluster, namespace, tmp_path):
    """Bodies of many TCP segments are read to the end (protobuf from kubectl's typed
    commands, JSON from create -f) — a partial read once corrupted them."""
    data = ("0123456789abcdef" * 64 + "\n") * 1000  # ~1 MB
    f = tmp_path / "big.txt"
    f.write_text(data)
    cluster.kubectl("create", "configmap", "big-proto", "-n", namespace, f"--from-file=big.txt={f}")
    assert cluster.kjson("get", "configmap", "big-proto", "-n", namespace)["data"]["big.txt"] == data
    doc = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big-json"},
                      "data": {"big.txt": data}})
    # create, not a client-side apply: its last-applied annotation would pass the 256 KiB
    # annotation limit (refused as upstream refuses it)
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=doc)
    assert cluster.kjson("get", "configmap", "big-json", "-n", namespace)["data"]["big.txt"] == data
