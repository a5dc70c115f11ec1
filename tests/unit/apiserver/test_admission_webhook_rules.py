"""Which webhooks a request reaches and how their answers become the request's
answer (kybern/apiserver/admission_webhooks.py), after upstream's rules matcher
(predicates/rules), ToStatusErr and VerifyAdmissionResponse."""

from __future__ import annotations

import pytest

from kybern.api import admissionregistration as ar
from kybern.api.catalog import builtin_registry
from kybern.apiserver.admission_webhooks import (
    _Attributes,
    _denied,
    _object_selector_matches,
    _rule_matches,
    _verify,
)

REG = builtin_registry()
PODS = REG.get("", "v1", "pods")
NAMESPACES = REG.get("", "v1", "namespaces")
PCS = REG.get("scheduling.k8s.io", "v1", "priorityclasses")


def attrs(info, op="CREATE", sub=None, obj=None, old=None):
    obj = obj if obj is not None else ({"metadata": {"name": "x", "namespace": "ns"}} if info.namespaced
                                       else {"metadata": {"name": "x"}})
    return _Attributes(info, op, obj, old, sub, False, None, None)


def rule(resources, ops=("*",), groups=("",), versions=("v1",), scope=None):
    r = {"operations": list(ops), "apiGroups": list(groups), "apiVersions": list(versions),
         "resources": list(resources)}
    if scope:
        r["scope"] = scope
    return r


@pytest.mark.parametrize("resources,sub,want", [
    (["pods"], None, True),
    (["pods"], "status", False),
    (["pods/status"], "status", True),
    (["pods/status"], None, False),
    (["pods/*"], "status", True),
    (["pods/*"], None, True),  # upstream's splitResource: "*" matches the empty subresource too
    (["*"], None, True),
    (["*"], "status", False),
    (["*/status"], "status", True),
    (["*/*"], None, True),
    (["*/*"], "exec", True),
    (["deployments"], None, False),
])
def test_resources_and_subresources(resources, sub, want):
    a = attrs(PODS, "UPDATE" if sub else "CREATE", sub)
    assert _rule_matches(rule(resources), a, PODS) is want


def test_operations_groups_versions():
    a = attrs(PODS)
    assert _rule_matches(rule(["pods"], ops=["CREATE"]), a, PODS)
    assert not _rule_matches(rule(["pods"], ops=["UPDATE", "DELETE"]), a, PODS)
    assert not _rule_matches(rule(["pods"], groups=["apps"]), a, PODS)
    assert _rule_matches(rule(["pods"], groups=["*"], versions=["*"]), a, PODS)
    assert not _rule_matches(rule(["pods"], versions=["v2"]), a, PODS)


def test_scope():
    pod, ns, pc = attrs(PODS), attrs(NAMESPACES), attrs(PCS)
    assert _rule_matches(rule(["*"], scope="Namespaced"), pod, PODS)
    assert not _rule_matches(rule(["*"], scope="Cluster"), pod, PODS)
    # a namespace is cluster-scoped, though its request carries its own name as namespace
    assert ns.namespace == "x"
    assert _rule_matches(rule(["*"], scope="Cluster"), ns, NAMESPACES)
    assert not _rule_matches(rule(["*"], scope="Namespaced"), ns, NAMESPACES)
    assert _rule_matches(rule(["*"], groups=["*"], scope="Cluster"), pc, PCS)


def test_object_selector_old_or_new():
    sel = {"matchLabels": {"app": "web"}}
    assert _object_selector_matches({}, attrs(PODS))
    assert not _object_selector_matches(sel, attrs(PODS))
    labelled = {"metadata": {"name": "x", "namespace": "ns", "labels": {"app": "web"}}}
    assert _object_selector_matches(sel, attrs(PODS, "DELETE", obj={}, old=labelled))
    assert _object_selector_matches(sel, attrs(PODS, "UPDATE", obj={"metadata": {}}, old=labelled))


def test_denial_as_upstream():
    e = _denied("a.b.c", {"code": 403, "reason": "Forbidden", "message": "no"})
    assert (e.code, e.reason, e.message) == (403, "Forbidden", 'admission webhook "a.b.c" denied the request: no')
    e = _denied("a.b.c", {"code": 200, "reason": "Because"})
    assert (e.code, e.message) == (400, 'admission webhook "a.b.c" denied the request: Because')
    e = _denied("a.b.c", None)
    assert (e.code, e.message) == (400, 'admission webhook "a.b.c" denied the request without explanation')


def test_response_verification():
    ok = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "u", "allowed": True}}
    assert _verify(ok, "u", False) is None
    assert _verify({}, "u", False) == "webhook response was absent"
    assert _verify({**ok, "apiVersion": "admission.k8s.io/v1beta1"}, "u", False) == \
        "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got " \
        "admission.k8s.io/v1beta1, Kind=AdmissionReview"
    assert _verify(ok, "other", False) == 'expected response.uid="other", got "u"'
    patched = {**ok, "response": {"uid": "u", "allowed": True, "patch": "W10="}}
    assert _verify(patched, "u", True) == "webhook returned response.patch but not response.patchType"
    patched["response"]["patchType"] = "JSONPatch"
    assert _verify(patched, "u", True) is None
    assert _verify(patched, "u", False) == "validating webhooks may not return patches"


def test_configuration_defaults_and_paths():
    obj = {"webhooks": [{"name": "a.b.c", "clientConfig": {"service": {"namespace": "n", "name": "s"}},
                         "rules": [rule(["pods"])], "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}
    ar.MUTATING.strategy.default(obj)
    h = obj["webhooks"][0]
    assert (h["failurePolicy"], h["matchPolicy"], h["timeoutSeconds"], h["reinvocationPolicy"],
            h["namespaceSelector"], h["objectSelector"], h["rules"][0]["scope"],
            h["clientConfig"]["service"]["port"]) == ("Fail", "Equivalent", 10, "Never", {}, {}, "*", 443)
    assert ar.MUTATING.strategy.validate(obj) == []
    ar.VALIDATING.strategy.default(obj)
    obj["webhooks"].append(dict(obj["webhooks"][0]))
    causes = ar.VALIDATING.strategy.validate(obj)
    assert causes == [{"type": "FieldValueDuplicate", "message": 'Duplicate value: "a.b.c"',
                       "field": "webhooks[1].name"}]


def test_patch_keeps_system_metadata():
    from kybern.apiserver.admission_webhooks import _assign

    m = {"name": "a", "namespace": "n", "uid": "u", "labels": {"x": "1"}}
    obj = {"apiVersion": "v1", "metadata": m, "spec": {}}
    _assign(obj, {"apiVersion": "v1", "metadata": {"name": "b", "namespace": "n", "uid": "other",
                                                   "labels": {"x": "2"}}, "spec": {"a": 1}})
    assert obj == {"apiVersion": "v1", "metadata": {"name": "a", "namespace": "n", "uid": "u", "labels": {"x": "2"}},
                   "spec": {"a": 1}}
    assert obj["metadata"] is m  # the store holds it
