"""Fuzzing the write paths of a private cluster with hypothesis: random,
truncated and mutated bodies (JSON, YAML, protobuf-looking bytes, huge numbers,
deep nesting, wrong types at random paths of a valid Deployment) sent to
create, update, every patch type, /status and /scale.

What must hold, as for kube-apiserver: every answer is either a success or a
well-formed `Status` with a 4xx code (a 500 is a bug), the server still answers
/readyz afterwards, and everything it stored is a valid object the official
Python client can deserialize.

The run is bounded (~30 s). In CI it is derandomized so a failure reproduces;
set KYBERN_FUZZ_RANDOM=1 to explore new inputs locally, KYBERN_FUZZ_EXAMPLES=N
to run longer.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import yaml
from conftest import start_cluster, stop_cluster
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes import client
from rawapi import RawAPI

pytestmark = pytest.mark.e2e

NS = "fuzz"
EXAMPLES = int(os.environ.get("KYBERN_FUZZ_EXAMPLES", "120"))
# no shrinking: it can take minutes against a server; the failure message shows the input
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=not os.environ.get("KYBERN_FUZZ_RANDOM"),
                phases=(Phase.explicit, Phase.reuse, Phase.generate),
                suppress_health_check=list(HealthCheck))

DEPLOY = f"/apis/apps/v1/namespaces/{NS}/deployments"
CMS = f"/api/v1/namespaces/{NS}/configmaps"
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")


def valid_deployment(name: str = "target") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}, "annotations": {"a": "b"}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "demo:v1",
                                                           "command": ["sleep", "1"],
                                                           "env": [{"name": "A", "value": "1"}],
                                                           "ports": [{"containerPort": 80}],
                                                           "resources": {"limits": {"cpu": "1"}}}]}}}}


# -- generators -----------------------------------------------------------------------
huge_ints = st.sampled_from([2 ** 63, -(2 ** 63) - 1, 2 ** 64, 10 ** 30, 2 ** 31, -1, 0])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), huge_ints,
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)), max_leaves=12)


def paths(doc, prefix=()):
    """Every path (tuple of keys/indices) inside a JSON document."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, prefix + (i,))


def set_path(doc, path, value, delete=False):
    if not path:
        return value
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    if delete:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return doc


@st.composite
def mutated_deployments(draw) -> dict:
    doc = valid_deployment()
    for _ in range(draw(st.integers(1, 3))):
        all_paths = list(paths(doc))
        path = draw(st.sampled_from(all_paths))
        if path and draw(st.booleans()) and draw(st.booleans()):
            doc = set_path(doc, path, None, delete=True)
        else:
            doc = set_path(doc, path, draw(json_values))
    return doc


def deep(depth: int, kind: str) -> bytes:
    if kind == "json-list":
        return b"[" * depth + b"]" * depth
    if kind == "json-obj":
        return b'{"a":' * depth + b"1" + b"}" * depth
    if kind == "yaml-flow":
        return b"a: " + b"[" * depth + b"]" * depth
    depth = min(depth, 1000)  # indentation grows quadratically: keep the body under the 3 MiB limit
    return b"".join(b" " * i + b"a:\n" for i in range(depth)) + b" " * depth + b"1\n"  # yaml block


@st.composite
def raw_bodies(draw) -> tuple[bytes, str]:
    """(body, content type): garbage, truncations and pathological documents."""
    ctype = draw(st.sampled_from(["application/json", "application/yaml",
                                  "application/vnd.kubernetes.protobuf"]))
    kind = draw(st.sampled_from(["random", "truncated", "deep", "numbers", "proto", "doc"]))
    if kind == "random":
        return draw(st.binary(max_size=200)), ctype
    if kind == "deep":
        return deep(draw(st.sampled_from([50, 190, 199, 200, 201, 500, 5000, 50000])),
                    draw(st.sampled_from(["json-list", "json-obj", "yaml-flow", "yaml-block"]))), ctype
    if kind == "numbers":
        n = draw(st.sampled_from(["1e999", "-1e999", "9" * 400, "NaN", "Infinity", "1.5e308", "0x10", "-0"]))
        body = json.dumps(valid_deployment(draw(st.sampled_from(["n1", "n2"])))).replace(
            '"replicas": 0', f'"replicas": {n}')
        return body.encode(), "application/json"
    if kind == "proto":  # the k8s protobuf envelope magic, then junk
        return b"k8s\x00" + draw(st.binary(max_size=120)), "application/vnd.kubernetes.protobuf"
    doc = draw(mutated_deployments()) if draw(st.booleans()) else valid_deployment(
        draw(st.sampled_from(["t1", "t2", "t3"])))
    text = yaml.safe_dump(doc).encode() if ctype == "application/yaml" else json.dumps(doc).encode()
    if kind == "truncated":
        text = text[:draw(st.integers(0, max(len(text) - 1, 0)))]
    return text, ctype


json_patch_ops = st.lists(st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
     "path": st.sampled_from(["/spec/replicas", "/spec/template/spec/containers/0/image", "/metadata/labels",
                              "/spec/template/spec/containers/-", "/spec/template/spec/containers/9",
                              "/metadata/name", "/spec", "", "/", "/a~1b/~0c", "/spec/replicas/x", "nope",
                              "/status", "/metadata/resourceVersion", "/metadata/finalizers/0"])},
    optional={"value": json_values, "from": st.sampled_from(["/spec/replicas", "/metadata/labels", "/x", ""])}),
    max_size=4)

smp_directives = st.fixed_dictionaries({}, optional={
    "$patch": st.sampled_from(["replace", "delete", "merge", "bogus"]),
    "$retainKeys": st.lists(st.text(max_size=6), max_size=3),
    "$setElementOrder/containers": st.lists(st.one_of(st.fixed_dictionaries({"name": st.text(max_size=4)}),
                                                      json_values), max_size=3),
    "$deleteFromPrimitiveList/finalizers": st.lists(json_values, max_size=2),
})


@st.composite
def patch_bodies(draw) -> tuple[bytes, str]:
    ctype = draw(st.sampled_from(PATCH_TYPES))
    if ctype == "application/json-patch+json":
        body = draw(st.one_of(json_patch_ops, json_values))
    elif draw(st.booleans()):
        body = draw(mutated_deployments())
    else:
        body = {"spec": {"template": {"spec": {"containers": [
            {"name": draw(st.sampled_from(["c", "d", ""])), **draw(smp_directives),
             "image": draw(json_values)}], **draw(smp_directives)}}, **draw(smp_directives)},
            "metadata": draw(st.one_of(st.just({}), st.dictionaries(st.sampled_from(
                ["labels", "finalizers", "name", "uid", "resourceVersion", "$patch"]), json_values, max_size=2)))}
    raw = yaml.safe_dump(body).encode() if ctype.endswith("yaml") and draw(st.booleans()) else \
        json.dumps(body).encode()
    if draw(st.integers(0, 9)) == 0:
        raw = raw[:draw(st.integers(0, len(raw)))]
    if draw(st.integers(0, 19)) == 0:  # a patch nested right up to (or past) the depth limit
        depth = draw(st.sampled_from([150, 197, 198, 199, 250]))
        raw = b'{"metadata":{"annotations":{"a":"b"}},"spec":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
        ctype = draw(st.sampled_from(PATCH_TYPES[1:]))
    return raw, ctype


# -- the harness ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_cluster(tmp_path_factory):
    c = start_cluster(tmp_path_factory.mktemp("fuzz"), wait_node=False)
    c.kubectl("create", "namespace", NS)
    yield c
    stop_cluster(c)


@pytest.fixture(scope="module")
def raw(fuzz_cluster):
    r = RawAPI(fuzz_cluster)
    code, _, _ = r.request("POST", DEPLOY, valid_deployment())
    assert code == 201
    code, _, _ = r.request("POST", CMS, {"metadata": {"name": "cm"}, "data": {"a": "b"}})
    assert code == 201
    return r


def check(raw: RawAPI, method: str, path: str, body: bytes, ctype: str) -> None:
    code, headers, out = raw.request(method, path, body, ctype)
    where = f"{method} {path} [{ctype}] {body[:300]!r}"
    assert code < 500, f"{code} for {where}: {out}"
    assert headers.get("Content-Type", "").startswith("application/json"), where
    assert isinstance(out, dict), where
    if code >= 400:
        assert out.get("kind") == "Status" and out.get("apiVersion") == "v1" and out.get("status") == "Failure", out
        assert out.get("code") == code and isinstance(out.get("message"), str) and out.get("reason"), out
    else:
        assert out.get("kind") in ("Deployment", "ConfigMap", "Scale", "Status"), (where, out)


def _restore(raw: RawAPI) -> None:
    """Keep a target to update and patch (a fuzz case may have deleted or broken it)."""
    code, _, _ = raw.request("GET", f"{DEPLOY}/target")
    if code == 404:
        raw.request("POST", DEPLOY, valid_deployment())


@FUZZ
@given(body=raw_bodies(), method=st.sampled_from(["POST", "PUT"]))
def test_create_and_update_survive_any_body(raw, body, method):
    data, ctype = body
    check(raw, method, DEPLOY if method == "POST" else f"{DEPLOY}/target", data, ctype)


@FUZZ
@given(doc=mutated_deployments(), method=st.sampled_from(["POST", "PUT", "PUT-status"]))
def test_wrong_types_at_random_paths(raw, doc, method):
    _restore(raw)
    if method == "POST":
        if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict):
            doc["metadata"]["name"] = "mut"
        check(raw, "POST", DEPLOY, json.dumps(doc).encode(), "application/json")
        raw.request("DELETE", f"{DEPLOY}/mut")
    else:
        path = f"{DEPLOY}/target" + ("/status" if method == "PUT-status" else "")
        check(raw, "PUT", path, json.dumps(doc).encode(), "application/json")


@FUZZ
@given(body=patch_bodies(), sub=st.sampled_from(["", "/status", "/scale"]), manager=st.booleans())
def test_every_patch_type_survives_any_patch(raw, body, sub, manager):
    _restore(raw)
    data, ctype = body
    q = "?fieldManager=fuzz" if manager else ""
    check(raw, "PATCH", f"{DEPLOY}/target{sub}{q}", data, ctype)


@FUZZ
@given(data=st.one_of(json_values, st.dictionaries(st.sampled_from(
    ["data", "binaryData", "metadata", "immutable", "kind", "apiVersion"]), json_values, max_size=4)),
       ctype=st.sampled_from(PATCH_TYPES + ("application/json",)))
def test_configmap_writes(raw, data, ctype):
    body = json.dumps(data).encode()
    if ctype == "application/json":
        check(raw, "PUT", f"{CMS}/cm", body, ctype)
    else:
        check(raw, "PATCH", f"{CMS}/cm?fieldManager=fuzz", body, ctype)
    code, _, _ = raw.request("GET", f"{CMS}/cm")
    if code == 404:
        raw.request("POST", CMS, {"metadata": {"name": "cm"}})


def test_query_parameters_are_checked(raw):
    for q in ("dryRun=Some", "fieldValidation=Loose", "gracePeriodSeconds=x", "propagationPolicy=Sideways",
              "limit=-", "resourceVersion=-5", "continue=x", "labelSelector=%3D%3D", "fieldSelector=a",
              "timeoutSeconds=soon"):
        for method, path, body in (("DELETE", f"{CMS}/cm", None), ("GET", CMS, None),
                                   ("POST", CMS, b'{"metadata":{"name":"q"}}'), ("DELETE", CMS, None)):
            code, _, out = raw.request(method, f"{path}?{q}", body)
            assert code < 500 and isinstance(out, dict), (method, q, code, out)
            if code >= 400:
                assert out["kind"] == "Status" and out["code"] == code
            raw.request("POST", CMS, {"metadata": {"name": "cm"}, "data": {"a": "b"}})
    for opts in ([1], "x", {"gracePeriodSeconds": "soon"}, {"preconditions": "x"},
                 {"preconditions": {"uid": 5}}, {"propagationPolicy": 5}, {"orphanDependents": "yes"},
                 {"dryRun": "All"}, {"dryRun": ["Nope"]}):
        code, _, out = raw.request("DELETE", f"{CMS}/cm", opts)
        assert code < 500 and out["kind"] in ("Status", "ConfigMap"), (opts, code, out)
        raw.request("POST", CMS, {"metadata": {"name": "cm"}, "data": {"a": "b"}})


def test_afterwards_the_server_is_ready_and_the_store_consistent(fuzz_cluster, raw):
    t0 = time.monotonic()
    code, _, _ = raw.request("GET", "/readyz")
    assert code == 200
    _restore(raw)
    api = fuzz_cluster.api_client()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    # the official client deserializes (and checks required fields of) everything stored
    deps = apps.list_namespaced_deployment(NS).items
    assert deps and all(d.spec.template.spec.containers for d in deps)
    for d in deps:
        assert d.metadata.uid and d.metadata.resource_version and d.metadata.generation >= 1
        assert isinstance(d.spec.replicas, int) and 0 <= d.spec.replicas < 2 ** 31
    cms = core.list_namespaced_config_map(NS).items
    for c in cms:
        assert all(isinstance(v, str) for v in (c.data or {}).values())
    # every stored object passes its own schema again: a no-op PUT of each is accepted
    for d in deps:
        body = api.sanitize_for_serialization(d)
        code, _, out = raw.request("PUT", f"{DEPLOY}/{d.metadata.name}", body)
        assert code in (200, 409), out
    # and the server still serves kubectl, and never failed a request without answering it
    assert "target" in fuzz_cluster.kubectl("get", "deployments", "-n", NS).stdout
    log = fuzz_cluster.log.read_text()
    assert "Unhandled exception" not in log and "internal error on" not in log, fuzz_cluster.log_tail(60)
    assert time.monotonic() - t0 < 30
