"""Static pods' mirror pods (the kubelet's applyDefaults) and the apiserver's rules
for them (the ServiceAccount plugin's mirror-pod checks)."""

from __future__ import annotations

from kybern.apiserver.admission_serviceaccount import mirror_pod_refusal
from kybern.node.staticpods import MIRROR, mirror_pod, read_manifests

MANIFEST = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "demo:v1"}]}}


def test_mirror_pod_is_named_for_the_node_and_hashed_on_content_and_node():
    p = mirror_pod(MANIFEST, "n1", "uid-1")
    assert (p["metadata"]["name"], p["metadata"]["namespace"], p["spec"]["nodeName"]) == ("web-n1", "default", "n1")
    assert p["metadata"]["ownerReferences"][0] == {"apiVersion": "v1", "kind": "Node", "name": "n1",
                                                   "uid": "uid-1", "controller": True}
    assert {"operator": "Exists", "effect": "NoExecute"} in p["spec"]["tolerations"]
    assert mirror_pod(MANIFEST, "n1", "uid-1")["metadata"]["annotations"][MIRROR] == p["metadata"]["annotations"][MIRROR]
    assert mirror_pod(MANIFEST, "n2", None)["metadata"]["annotations"][MIRROR] != p["metadata"]["annotations"][MIRROR]
    changed = {**MANIFEST, "metadata": {"name": "web", "labels": {"a": "c"}}}
    assert mirror_pod(changed, "n1", None)["metadata"]["annotations"][MIRROR] != p["metadata"]["annotations"][MIRROR]
    assert MANIFEST["metadata"] == {"name": "web", "labels": {"a": "b"}}  # the manifest itself is untouched


def test_manifest_directory_skips_dot_files_and_non_pods(tmp_path):
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n")
    (tmp_path / ".b.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: b}\n")
    (tmp_path / "c.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: c}\n")
    (tmp_path / "d.yaml").write_text("{not yaml")
    assert list(read_manifests(str(tmp_path))) == ["a.yaml"]
    assert read_manifests(str(tmp_path / "missing")) == {}


def test_mirror_pods_may_not_reference_accounts_secrets_or_tokens():
    spec = MANIFEST["spec"]
    assert mirror_pod_refusal({"spec": spec}) is None
    assert mirror_pod_refusal({"spec": {**spec, "serviceAccountName": "x"}}) == \
        "a mirror pod may not reference service accounts"
    env = [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    assert mirror_pod_refusal({"spec": {"containers": [{"name": "c", "env": env}]}}) == \
        "a mirror pod may not reference secrets"
    token = [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
    assert mirror_pod_refusal({"spec": {**spec, "volumes": token}}) == \
        "a mirror pod may not use ServiceAccountToken volume projections"
