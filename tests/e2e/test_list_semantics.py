"""Lists as kube-apiserver serves them: label and field selectors (kubectl -l,
--field-selector), 400 for bad selectors, and limit/continue pagination that
stays consistent (one snapshot) while objects change between pages."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from rawapi import RawAPI

pytestmark = pytest.mark.e2e

LABELS = {"a": {"env": "prod", "tier": "web"}, "b": {"env": "dev", "tier": "web"}, "c": {"env": "prod"}, "d": {}}


@pytest.fixture(scope="module")
def api(cluster):
    return cluster.api_client()


def _names(cluster, namespace, *args) -> list[str]:
    out = cluster.kubectl("get", "configmaps", "-n", namespace, "-o", "name", *args).stdout.split()
    return sorted(n.split("/", 1)[1] for n in out if n.split("/", 1)[1] in LABELS)


@pytest.mark.parametrize("selector,want", [
    ("env=prod", "ac"), ("env==prod", "ac"), ("env!=prod", "bd"), ("env in (prod,dev)", "abc"),
    ("env notin (prod)", "bd"), ("tier", "ab"), ("!tier", "cd"), ("env=prod,tier=web", "a"),
    ("env in (prod),!tier", "c"), ("env=nothing", ""),
])
def test_label_selectors(cluster, api, namespace, selector, want):
    core = client.CoreV1Api(api)
    for name, labels in LABELS.items():
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": labels}})
    assert "".join(_names(cluster, namespace, "-l", selector)) == want
    # the official client passes the same string through
    got = sorted(c.metadata.name for c in core.list_namespaced_config_map(namespace, label_selector=selector).items
                 if c.metadata.name in LABELS)
    assert "".join(got) == want


def test_field_selectors(cluster, api, namespace):
    core = client.CoreV1Api(api)
    for name in "ab":
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})
    assert _names(cluster, namespace, "--field-selector", "metadata.name=a") == ["a"]
    assert _names(cluster, namespace, "--field-selector", "metadata.name!=a") == ["b"]
    assert _names(cluster, namespace, "--field-selector", f"metadata.namespace=={namespace}") == ["a", "b"]
    out = cluster.kubectl("get", "configmaps", "-A", "--field-selector", f"metadata.namespace={namespace}",
                          "-o", "name").stdout.split()
    assert sorted(out) == ["configmap/a", "configmap/b", "configmap/kube-root-ca.crt"]  # the root CA publisher's
    # pods add spec.nodeName and status.phase; a pod bound to a node without an agent stays Pending
    spec = {"containers": [{"name": "c", "image": "demo:v1"}]}
    core.create_namespaced_pod(namespace, {"metadata": {"name": "bound"}, "spec": {**spec, "nodeName": "ghost"}})
    core.create_namespaced_pod(namespace, {"metadata": {"name": "loose"},
                                           "spec": {**spec, "schedulerName": "nobody"}})

    def pods(sel):
        return cluster.kubectl("get", "pods", "-n", namespace, "--field-selector", sel, "-o", "name").stdout.split()
    assert pods("spec.nodeName=ghost") == ["pod/bound"]
    assert pods("spec.nodeName=") == ["pod/loose"]
    assert sorted(pods("status.phase=Pending")) == ["pod/bound", "pod/loose"]
    assert pods("status.phase=Pending,spec.nodeName!=ghost") == ["pod/loose"]
    assert pods("status.phase=Running") == []
    got = core.list_namespaced_pod(namespace, field_selector="spec.schedulerName=nobody").items
    assert [p.metadata.name for p in got] == ["loose"]
    core.delete_namespaced_pod("bound", namespace, grace_period_seconds=0)


@pytest.mark.parametrize("kind,flag,selector,message", [
    ("configmaps", "-l", "env in prod", "unable to parse requirement"),
    ("configmaps", "-l", "env in (a", "unable to parse requirement"),
    ("configmaps", "-l", "Bad Key=x", "unable to parse requirement"),
    ("configmaps", "--field-selector", "metadata.name", "invalid selector"),
    ("configmaps", "--field-selector", "data.x=y",
     '"data.x" is not a known field selector: only "metadata.name", "metadata.namespace"'),
    ("pods", "--field-selector", "spec.containers=x", "field label not supported: spec.containers"),
])
def test_invalid_selectors_are_400(cluster, kind, flag, selector, message):
    p = cluster.kubectl("get", kind, "-n", "default", flag, selector, check=False)
    assert p.returncode == 1 and "Error from server (BadRequest)" in p.stderr and message in p.stderr, p.stderr


def test_pagination_is_one_snapshot(cluster, api, namespace):
    core = client.CoreV1Api(api)
    # labelled: the namespace also holds kube-root-ca.crt (the root CA publisher's, as upstream)
    for i in range(5):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"p{i}", "labels": {"set": "p"}},
                                                      "data": {"v": "old"}})
    page = core.list_namespaced_config_map(namespace, limit=2, label_selector="set=p")
    assert [c.metadata.name for c in page.items] == ["p0", "p1"] and page.metadata._continue
    snapshot_rv = page.metadata.resource_version
    # change the collection between pages: the next pages still show the first page's snapshot
    core.delete_namespaced_config_map("p3", namespace)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "p5", "labels": {"set": "p"}}})
    core.patch_namespaced_config_map("p2", namespace, {"data": {"v": "new"}})
    seen, token = [], page.metadata._continue
    while token:
        page = core.list_namespaced_config_map(namespace, limit=2, _continue=token, label_selector="set=p")
        assert page.metadata.resource_version == snapshot_rv
        seen += page.items
        token = page.metadata._continue
    assert [c.metadata.name for c in seen] == ["p2", "p3", "p4"]
    assert seen[0].data == {"v": "old"}
    # a new list sees the present
    now = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
    assert [n for n in now if n.startswith("p")] == ["p0", "p1", "p2", "p4", "p5"]
    # kubectl follows the continue tokens itself
    out = cluster.kubectl("get", "configmaps", "-n", namespace, "--chunk-size=2", "-o", "name").stdout.split()
    assert [n for n in out if n.startswith("configmap/p")] == [f"configmap/p{i}" for i in (0, 1, 2, 4, 5)]
    with pytest.raises(ApiException) as ei:
        core.list_namespaced_config_map(namespace, limit=2, _continue="not-a-token")
    assert ei.value.status == 400
    # limit with a selector still fills pages with matching objects only
    page = core.list_namespaced_config_map(namespace, limit=1, field_selector="metadata.name=p4")
    names = [c.metadata.name for c in page.items]
    while page.metadata._continue:
        page = core.list_namespaced_config_map(namespace, limit=1, field_selector="metadata.name=p4",
                                               _continue=page.metadata._continue)
        names += [c.metadata.name for c in page.items]
    assert names == ["p4"]


def test_bad_list_parameters_are_400(cluster, namespace):
    raw = RawAPI(cluster)
    for q in ("limit=abc", "resourceVersion=abc", "timeoutSeconds=x&watch=true", "continue=%%%"):
        code, _, st = raw.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?{q}")
        assert code == 400 and st["kind"] == "Status" and st["reason"] == "BadRequest", (q, code, st)
