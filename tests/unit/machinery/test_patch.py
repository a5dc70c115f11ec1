"""JSON patch, merge patch and strategic merge patch, with cases following
upstream's semantics (k8s.io/apimachinery strategicpatch tests, RFC 6902/7386)."""

import pytest

from kybern.api import schemas
from kybern.machinery.errors import StatusError
from kybern.machinery.patch import json_patch, merge_patch, strategic_merge_patch

POD = schemas.lookup("io.k8s.api.core.v1.Pod")
DEPLOYMENT = schemas.lookup("io.k8s.api.apps.v1.Deployment")


def pod(*containers, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}},
            "spec": {"containers": list(containers), **spec}}


def c(name, **kw):
    return {"name": name, **kw}


# --- JSON patch --------------------------------------------------------------

def test_json_patch_ops():
    doc = {"a": {"b": [1, 2, 3]}, "x~y": 1, "p/q": 2}
    out = json_patch(doc, [
        {"op": "add", "path": "/a/b/-", "value": 4},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "remove", "path": "/a/b/1"},
        {"op": "replace", "path": "/x~0y", "value": 10},
        {"op": "copy", "from": "/p~1q", "path": "/c"},
        {"op": "move", "from": "/c", "path": "/d"},
        {"op": "test", "path": "/d", "value": 2},
    ])
    assert out == {"a": {"b": [0, 2, 3, 4]}, "x~y": 10, "p/q": 2, "d": 2}
    assert doc == {"a": {"b": [1, 2, 3]}, "x~y": 1, "p/q": 2}  # input untouched


@pytest.mark.parametrize("ops, message", [
    ([{"op": "test", "path": "/a", "value": 2}], "testing value /a failed: test failed"),
    ([{"op": "remove", "path": "/nope"}],
     'remove operation does not apply: doc is missing path: "/nope": missing value'),
    ([{"op": "replace", "path": "/nope", "value": 1}],
     "replace operation does not apply: doc is missing key: /nope: missing value"),
    ([{"op": "add", "path": "/x/y", "value": 1}],
     'add operation does not apply: doc is missing path: "/x/y": missing value'),
    ([{"op": "add", "path": "/l/5", "value": 1}],
     "Unable to access invalid index: 5: invalid index referenced"),
    ([{"op": "frobnicate", "path": "/a"}], "Unexpected kind: frobnicate"),
])
def test_json_patch_failures_are_unprocessable(ops, message):
    with pytest.raises(StatusError) as e:
        json_patch({"a": 1, "l": [1]}, ops)
    assert e.value.code == 422 and e.value.reason == "Invalid"
    assert e.value.message == "the server rejected our request due to an error in our request"
    # as kube-apiserver (NewGenericServerResponse without causes): kubectl shows only the message
    assert e.value.status()["details"] == {}
    assert e.value.why == message


def test_json_patch_must_be_a_list():
    with pytest.raises(StatusError) as e:
        json_patch({}, {"op": "add"})
    assert e.value.code == 400


# --- merge patch -------------------------------------------------------------

def test_merge_patch_rfc7386():
    doc = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    out = merge_patch(doc, {"a": "z", "c": {"f": None}, "l": [3], "n": {"x": None, "y": 1}})
    assert out == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {"y": 1}}
    assert doc["c"] == {"d": "e", "f": "g"}
    with pytest.raises(StatusError) as e:
        merge_patch(doc, [1])
    assert e.value.code == 400


# --- strategic merge patch ---------------------------------------------------

def test_containers_merge_by_name():
    doc = pod(c("a", image="a1"), c("b", image="b1"))
    out = strategic_merge_patch(doc, {"spec": {"containers": [c("b", image="b2")]}}, POD)
    assert out["spec"]["containers"] == [c("a", image="a1"), c("b", image="b2")]
    out = strategic_merge_patch(doc, {"spec": {"containers": [c("z", image="z1")]}}, POD)
    assert [x["name"] for x in out["spec"]["containers"]] == ["z", "a", "b"]


def test_without_schema_lists_are_replaced():
    doc = pod(c("a", image="a1"), c("b", image="b1"))
    out = strategic_merge_patch(doc, {"spec": {"containers": [c("b", image="b2")]}})
    assert out["spec"]["containers"] == [c("b", image="b2")]


def test_nested_merge_lists_env_and_ports():
    doc = pod(c("a", env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                ports=[{"containerPort": 80}, {"containerPort": 443}]))
    patch = {"spec": {"containers": [c("a", env=[{"name": "B", "value": "3"}],
                                       ports=[{"containerPort": 443, "name": "https"}])]}}
    out = strategic_merge_patch(doc, patch, POD)["spec"]["containers"][0]
    assert out["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert out["ports"] == [{"containerPort": 80}, {"containerPort": 443, "name": "https"}]


def test_atomic_lists_are_replaced():
    doc = pod(c("a", args=["x", "y"]), tolerations=[{"key": "k"}])
    out = strategic_merge_patch(doc, {"spec": {"containers": [c("a", args=["z"])],
                                               "tolerations": [{"key": "j"}]}}, POD)
    assert out["spec"]["containers"][0]["args"] == ["z"]
    assert out["spec"]["tolerations"] == [{"key": "j"}]


def test_null_deletes_keys():
    doc = pod(c("a", image="i"))
    out = strategic_merge_patch(doc, {"metadata": {"labels": {"a": None, "b": "2"}},
                                      "spec": {"containers": [c("a", image=None)]}}, POD)
    assert out["metadata"]["labels"] == {"b": "2"}
    assert out["spec"]["containers"] == [c("a")]


def test_delete_directive_in_merge_list():
    doc = pod(c("a"), c("b"))
    out = strategic_merge_patch(doc, {"spec": {"containers": [{"$patch": "delete", "name": "a"}]}}, POD)
    assert out["spec"]["containers"] == [c("b")]


def test_replace_directive_in_list_and_map():
    doc = pod(c("a"), c("b"))
    out = strategic_merge_patch(doc, {"spec": {"containers": [c("x"), {"$patch": "replace"}]}}, POD)
    assert out["spec"]["containers"] == [c("x")]
    out = strategic_merge_patch(doc, {"metadata": {"labels": {"$patch": "replace", "z": "9"}}}, POD)
    assert out["metadata"]["labels"] == {"z": "9"}
    out = strategic_merge_patch(doc, {"metadata": {"labels": {"$patch": "delete"}}}, POD)
    assert out["metadata"]["labels"] == {}


def test_primitive_merge_list_is_a_union_and_delete_from_primitive_list():
    doc = {"metadata": {"name": "p", "finalizers": ["a", "b"]}}
    out = strategic_merge_patch(doc, {"metadata": {"finalizers": ["c", "a"]}}, POD)
    assert sorted(out["metadata"]["finalizers"]) == ["a", "b", "c"]
    out = strategic_merge_patch(doc, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, POD)
    assert out["metadata"]["finalizers"] == ["b"]


def test_retain_keys_clears_other_fields():
    doc = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    out = strategic_merge_patch(doc, patch, DEPLOYMENT)
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    with pytest.raises(StatusError) as e:
        strategic_merge_patch(doc, {"spec": {"strategy": {"$retainKeys": ["type"], "x": 1}}},
                              DEPLOYMENT)
    assert e.value.code == 400 and e.value.message == "invalid patch format of retainKeys"


def test_set_element_order():
    doc = pod(c("1"), c("2"), c("3"))
    out = strategic_merge_patch(doc, {"spec": {
        "$setElementOrder/containers": [c("3"), c("1"), c("2")]}}, POD)
    assert [x["name"] for x in out["spec"]["containers"]] == ["3", "1", "2"]
    out = strategic_merge_patch(doc, {"spec": {
        "$setElementOrder/containers": [c("1"), c("4"), c("2"), c("3")],
        "containers": [c("4", image="i")]}}, POD)
    assert [x["name"] for x in out["spec"]["containers"]] == ["1", "4", "2", "3"]
    with pytest.raises(StatusError) as e:
        strategic_merge_patch(doc, {"spec": {"$setElementOrder/containers": "x"}}, POD)
    assert e.value.code == 400


def test_new_keys_lose_nulls_and_directives():
    doc = {"metadata": {"name": "p"}}
    out = strategic_merge_patch(doc, {"spec": {"nodeName": None, "containers": [c("a", image=None)],
                                               "affinity": {"$patch": "delete"}}}, POD)
    assert out == {"metadata": {"name": "p"}, "spec": {"containers": [c("a")]}}


def test_errors_follow_upstream_codes():
    with pytest.raises(StatusError) as e:
        strategic_merge_patch(pod(c("a")), {"spec": {"containers": [{"image": "x"}]}}, POD)
    assert e.value.code == 500 and "does not contain declared merge key: name" in e.value.message
    with pytest.raises(StatusError) as e:
        strategic_merge_patch(pod(c("a")), {"metadata": {"$patch": "frob"}}, POD)
    assert e.value.code == 500 and "unknown patch type: frob" in e.value.message
    with pytest.raises(StatusError) as e:
        strategic_merge_patch({"metadata": {"finalizers": [["a"]]}},
                              {"metadata": {"finalizers": [["b"]]}}, POD)
    assert e.value.code == 422
    with pytest.raises(StatusError) as e:
        strategic_merge_patch({}, [1], POD)
    assert e.value.code == 400


def test_inputs_are_not_mutated():
    doc = pod(c("a", image="a1"))
    patch = {"spec": {"containers": [c("a", image="a2"), {"$patch": "delete", "name": "b"}]}}
    strategic_merge_patch(doc, patch, POD)
    assert doc == pod(c("a", image="a1"))
    assert patch == {"spec": {"containers": [c("a", image="a2"), {"$patch": "delete", "name": "b"}]}}
