"""managedFields on Update writes and the FieldsV1 field-set algebra."""

from __future__ import annotations

import copy

import pytest

from kybern.api import schemas
from kybern.machinery import errors
from kybern.machinery import fieldpath as fp
from kybern.machinery import managedfields as mf

DEPLOYMENT = schemas.definition("io.k8s.api.apps.v1.Deployment")
CONFIGMAP = schemas.definition("io.k8s.api.core.v1.ConfigMap")


def deployment(replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                                           "ports": [{"containerPort": 80}]}]}}}}


def entries(obj: dict) -> dict[tuple[str, str], dict]:
    return {(e["manager"], e.get("subresource", "")): e for e in obj["metadata"]["managedFields"]}


def test_field_set_uses_list_types_and_upstream_path_elements():
    s = fp.to_set(deployment(), DEPLOYMENT)
    containers = s["f:spec"]["f:template"]["f:spec"]["f:containers"]
    item = containers['k:{"name":"nginx"}']
    assert "." in item and "f:image" in item  # list items are members, with their fields below
    # the key field protocol takes its schema default, as upstream's OpenAPI gives it
    assert 'k:{"containerPort":80,"protocol":"TCP"}' in item["f:ports"]
    assert s["f:spec"]["f:selector"] == {}  # LabelSelector is an atomic map
    assert s["f:metadata"]["f:labels"] == {"f:app": {}}  # granular map: no "." for the map itself


def test_set_algebra():
    a = fp.from_paths(("f:a", "f:b"), ("f:a", "f:c"), ("f:d",))
    b = fp.from_paths(("f:a", "f:b"), ("f:d",))
    assert fp.difference(a, b) == {"f:a": {"f:c": {}}}
    assert fp.intersection(a, b) == b
    assert fp.union(b, fp.from_paths(("f:a", "f:c"))) == a
    assert fp.recursive_difference(a, fp.from_paths(("f:a",))) == {"f:d": {}}
    assert fp.difference(a, fp.from_paths(("f:a",))) == a  # non-recursive: "a" itself was no member
    paths = [fp.path_string(p) for p in fp.iterate(fp.to_set(deployment(), DEPLOYMENT))]
    assert '.spec.template.spec.containers[name="nginx"].image' in paths
    assert '.spec.template.spec.containers[name="nginx"].ports[containerPort=80,protocol="TCP"]' in paths
    assert fp.path_string(("f:metadata", "f:finalizers", 'v:"x"')) == '.metadata.finalizers[="x"]'


def test_canonical_order_is_upstreams():
    s = {"k:{\"port\":9}": {}, "k:{\"port\":10}": {}, "f:z": {}, ".": {}, "f:a": {}}
    assert list(fp.canonical(s)) == [".", "f:a", "f:z", 'k:{"port":9}', 'k:{"port":10}']


def test_create_records_every_field_with_created_nodes_marked():
    obj = deployment()
    mf.record_update(obj, None, manager="kubectl-create", api_version="apps/v1", schema=DEPLOYMENT,
                     has_status=True)
    (e,) = obj["metadata"]["managedFields"]
    assert (e["manager"], e["operation"], e["apiVersion"], e["fieldsType"]) == \
        ("kubectl-create", "Update", "apps/v1", "FieldsV1")
    f = e["fieldsV1"]
    assert f["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}  # metadata itself is never owned
    assert "." not in f["f:spec"]  # spec exists in every object (a Go struct), labels did not
    assert "f:name" not in f["f:metadata"] and "f:apiVersion" not in f


def test_creates_from_one_template_each_get_their_own_fields_in_upstream_order():
    """Objects made from one template (a ReplicaSet's pods) share everything but
    metadata; each create's fields are its own, serialised in upstream's order."""
    first, second = deployment(), deployment()
    second["metadata"]["labels"] = {"app": "web", "tier": "front"}
    second["metadata"]["annotations"] = {"a": "b"}
    for obj in (first, second):
        mf.record_update(obj, None, manager="rs", api_version="apps/v1", schema=DEPLOYMENT, has_status=True)
    f1, f2 = (o["metadata"]["managedFields"][0]["fieldsV1"] for o in (first, second))
    assert f1["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert f2["f:metadata"] == {"f:annotations": {".": {}, "f:a": {}},
                                "f:labels": {".": {}, "f:app": {}, "f:tier": {}}}
    assert f1["f:spec"] == f2["f:spec"] and f1["f:spec"] is not f2["f:spec"]
    assert list(f2) == ["f:metadata", "f:spec"]
    assert list(f1["f:spec"]) == sorted(f1["f:spec"])
    spec = f1["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']
    assert list(spec) == [".", "f:image", "f:name", "f:ports"]


def test_update_moves_changed_fields_and_drops_removed_ones():
    obj = deployment()
    mf.record_update(obj, None, manager="a", api_version="apps/v1", schema=DEPLOYMENT, has_status=True)
    new = copy.deepcopy(obj)
    new["spec"]["replicas"] = 3
    del new["metadata"]["labels"]
    mf.record_update(new, obj, manager="b", api_version="apps/v1", schema=DEPLOYMENT, has_status=True)
    got = entries(new)
    assert got[("b", "")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    a = got[("a", "")]["fieldsV1"]
    assert "f:replicas" not in a["f:spec"] and "f:metadata" not in a


def test_noop_update_adds_no_entry_and_keeps_time():
    obj = deployment()
    mf.record_update(obj, None, manager="a", api_version="apps/v1", schema=DEPLOYMENT, has_status=True)
    new = copy.deepcopy(obj)
    mf.record_update(new, obj, manager="b", api_version="apps/v1", schema=DEPLOYMENT, has_status=True)
    assert new["metadata"]["managedFields"] == obj["metadata"]["managedFields"]


def test_status_writes_are_a_subresource_entry_and_spec_is_not_owned_there():
    obj = deployment()
    mf.record_update(obj, None, manager="a", api_version="apps/v1", schema=DEPLOYMENT, has_status=True)
    new = copy.deepcopy(obj)
    new["status"] = {"replicas": 1}
    mf.record_update(new, obj, manager="kube-controller-manager", api_version="apps/v1", schema=DEPLOYMENT,
                     has_status=True, subresource="status")
    e = entries(new)[("kube-controller-manager", "status")]
    assert e["subresource"] == "status" and e["fieldsV1"] == {"f:status": {".": {}, "f:replicas": {}}}


def test_status_on_the_main_resource_is_owned_by_nobody():
    obj = deployment()
    obj["status"] = {"replicas": 1}
    mf.record_update(obj, None, manager="a", api_version="apps/v1", schema=DEPLOYMENT, has_status=True)
    assert "f:status" not in obj["metadata"]["managedFields"][0]["fieldsV1"]


def test_client_supplied_managed_fields_are_kept_and_empty_ones_ignored():
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    mf.record_update(obj, None, manager="a", api_version="v1", schema=CONFIGMAP, has_status=False)
    new = copy.deepcopy(obj)
    del new["metadata"]["managedFields"]  # a client that does not know about them
    new["data"]["k2"] = "v2"
    mf.record_update(new, obj, manager="b", api_version="v1", schema=CONFIGMAP, has_status=False)
    assert set(entries(new)) == {("a", ""), ("b", "")}
    assert entries(new)[("b", "")]["fieldsV1"] == {"f:data": {"f:k2": {}}}


def test_update_managers_are_capped():
    managers = {}
    for i in range(12):
        e = mf.Entry(f"m{i:02}", "Update", "v1", f"2024-01-01T00:00:{i:02}Z", fp.from_paths((f"f:x{i}",)))
        managers[e.key] = e
    out = mf.cap_updates(managers)
    assert len(out) == 10
    ancient = [e for e in out.values() if e.manager == "ancient-changes"]
    assert ancient and set(ancient[0].fields) == {"f:x0", "f:x1", "f:x2"}


def test_manager_name_from_user_agent():
    assert mf.manager_from(None, "kubectl/v1.32.0 (linux/amd64) kubernetes/abc") == "kubectl"
    assert mf.manager_from(None, "python-requests/2.31") == "python-requests"
    assert mf.manager_from(None, None) == "unknown"
    assert mf.manager_from("kubectl-edit", "kubectl/v1.32") == "kubectl-edit"
    with pytest.raises(errors.StatusError) as e:
        mf.manager_from("x" * 129, None)
    assert e.value.code == 422 and "fieldManager" in e.value.message
