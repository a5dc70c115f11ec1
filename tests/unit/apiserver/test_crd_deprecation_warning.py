"""The Warning a deprecated CRD version's requests get (upstream's
defaultDeprecationWarning and CompareKubeAwareVersionStrings)."""

from __future__ import annotations

from kybern.apiserver.crds import compare_kube_versions, deprecation_warnings


def crd(*versions: dict) -> dict:
    return {"spec": {"group": "example.com", "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": list(versions)}}


def test_kube_aware_order():
    order = ["v2", "v1", "v11beta2", "v10beta3", "v3beta1", "v12alpha1", "v11alpha2", "foo1", "foo10"]
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            assert compare_kube_versions(a, b) > 0 and compare_kube_versions(b, a) < 0, (a, b)


def test_default_and_custom_warnings():
    w = deprecation_warnings(crd(
        {"name": "v1alpha1", "served": True, "deprecated": True},
        {"name": "v1beta1", "served": True, "deprecated": True, "deprecationWarning": "use v1, please"},
        {"name": "v2beta1", "served": True},
        {"name": "v1", "served": True},
        {"name": "v3", "served": False},
        {"name": "v0alpha9", "served": False, "deprecated": True}))
    assert w == {("v1alpha1", "widgets"): "example.com/v1alpha1 Widget is deprecated; use example.com/v1 Widget",
                 ("v1beta1", "widgets"): "use v1, please"}
    only = deprecation_warnings(crd({"name": "v1", "served": True, "deprecated": True},
                                    {"name": "v1beta1", "served": True}))
    assert only == {("v1", "widgets"): "example.com/v1 Widget is deprecated"}
