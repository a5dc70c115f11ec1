"""CustomResourceDefinition validation: names, scope, versions, structural schemas."""

import copy

from kybern.api import crd

GOOD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {"type": "object", "properties": {
                     "size": {"type": "string"}}}}}}}]},
}


def causes(mutate):
    o = copy.deepcopy(GOOD)
    mutate(o)
    crd.CRDStrategy().default(o)
    return sorted(f"{c['field']}: {c['message']}" for c in crd.validate_crd(o))


def test_good_crd_is_valid_and_defaulted():
    o = copy.deepcopy(GOOD)
    s = crd.CRDStrategy()
    s.prepare_for_create(o)
    assert crd.validate_crd(o) == []
    assert o["spec"]["names"]["singular"] == "widget" and o["spec"]["names"]["listKind"] == "WidgetList"
    assert o["status"]["storedVersions"] == ["v1"]


def test_name_must_be_plural_dot_group():
    assert causes(lambda o: o["metadata"].update(name="wrong.example.com")) == [
        'metadata.name: Invalid value: "wrong.example.com": must be spec.names.plural+"."+spec.group']


def test_group_needs_a_dot_and_scope_a_known_value():
    def m(o):
        o["spec"]["group"] = "example"
        o["metadata"]["name"] = "widgets.example"
        o["spec"]["scope"] = "Galaxy"
    got = causes(m)
    assert 'spec.group: Invalid value: "example": should be a domain with at least one dot' in got
    assert 'spec.scope: Unsupported value: "Galaxy": supported values: "Cluster", "Namespaced"' in got


def test_exactly_one_storage_version():
    def m(o):
        v2 = copy.deepcopy(o["spec"]["versions"][0])
        v2["name"] = "v2"
        o["spec"]["versions"].append(v2)
    assert any("exactly one version marked as storage version" in c for c in causes(m))


def test_schema_required_and_structural():
    assert causes(lambda o: o["spec"]["versions"][0].pop("schema")) == [
        "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]

    def untyped(o):
        o["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"] = {}
    assert causes(untyped) == [("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type: "
                                "Required value: must not be empty for specified object fields")]


def test_bad_names():
    got = causes(lambda o: o["spec"]["names"].update(plural="Widgets", kind="Wid get"))
    assert any(c.startswith('spec.names.plural: Invalid value: "Widgets"') for c in got)
    assert any(c.startswith('spec.names.kind: Invalid value: "Wid get"') for c in got)


def test_deletion_is_held_until_instances_are_gone():
    s = crd.CRDStrategy()
    o = copy.deepcopy(GOOD)
    assert s.holds_deletion(o)
    s.mark_deleting(o)
    assert crd.condition(o, "Terminating")["reason"] == "InstanceDeletionInProgress"
    o["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    crd.set_condition(o, "Terminating", "False", "InstanceDeletionCompleted", "removed all instances")
    assert not s.holds_deletion(o)
