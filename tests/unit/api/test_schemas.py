"""Upstream definitions converted to swagger 2.0 form, and walking them."""

from kybern.api import schemas

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"


def test_definitions_are_swagger_form():
    defs = schemas.definitions()
    assert len(defs) >= 600
    spec = defs["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["type"] == "object"
    assert spec["properties"]["replicas"] == {
        "description": spec["properties"]["replicas"]["description"],
        "format": "int32", "type": "integer"}
    assert spec["properties"]["template"]["$ref"] == "#/definitions/io.k8s.api.core.v1.PodTemplateSpec"
    # kubernetes-validate's added enums on apiVersion/kind are not upstream's
    assert "enum" not in defs[DEPLOYMENT]["properties"]["kind"]


def test_int_or_string_and_quantity_are_strings():
    ios = schemas.definition(schemas.INT_OR_STRING)
    assert ios["type"] == "string" and ios["format"] == "int-or-string"
    assert ios["x-kubernetes-int-or-string"] is True
    assert schemas.definition(schemas.QUANTITY)["type"] == "string"


def test_definition_for_gvk():
    assert schemas.definition_for_gvk("apps", "v1", "Deployment") == DEPLOYMENT
    assert schemas.definition_for_gvk("", "v1", "Pod") == "io.k8s.api.core.v1.Pod"
    assert schemas.definition_for_gvk("coordination.k8s.io", "v1", "Lease") == \
        "io.k8s.api.coordination.v1.Lease"
    assert schemas.definition_for_gvk("", "v1", "DeleteOptions").endswith("meta.v1.DeleteOptions")
    assert schemas.definition_for_gvk("nope", "v1", "Nope") is None


def test_field_schema_walks_objects_arrays_and_maps():
    containers = schemas.field_schema(DEPLOYMENT, ["spec", "template", "spec", "containers"])
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    name = schemas.field_schema(DEPLOYMENT, ["spec", "template", "spec", "containers", "name"])
    assert name["type"] == "string"
    assert schemas.field_schema(DEPLOYMENT, ["spec", "template", "spec", "containers", "0", "image"])
    assert schemas.field_schema(DEPLOYMENT, ["metadata", "labels", "app"]) == {"type": "string"}
    assert schemas.field_schema(DEPLOYMENT, ["spec", "nope"]) is None
    strategy = schemas.field_schema(DEPLOYMENT, ["spec", "strategy"])
    assert schemas.resolve(strategy)["properties"]["type"]["type"] == "string"


def test_go_type_names():
    f = schemas.field_schema
    assert schemas.go_type(f(DEPLOYMENT, ["spec", "replicas"])) == "int32"
    assert schemas.go_type(f(DEPLOYMENT, ["spec"])) == "v1.DeploymentSpec"
    assert schemas.go_type(f(DEPLOYMENT, ["spec", "template", "spec", "containers"])) == "[]v1.Container"
    assert schemas.go_type(f(DEPLOYMENT, ["metadata", "labels"])) == "map[string]string"


def test_register_extra_definition_changes_generation():
    before = schemas.generation()
    schemas.register("com.example.v1.Widget", {
        "type": "object", "properties": {"spec": {"type": "object", "properties": {
            "size": {"type": "integer"}}}}},
        gvks=[{"group": "example.com", "version": "v1", "kind": "Widget"}])
    try:
        assert schemas.generation() > before
        assert schemas.definition_for_gvk("example.com", "v1", "Widget") == "com.example.v1.Widget"
        assert schemas.field_schema("com.example.v1.Widget", ["spec", "size"]) == {"type": "integer"}
    finally:
        schemas.unregister("com.example.v1.Widget")
    assert schemas.definition("com.example.v1.Widget") is None
    assert schemas.definition_for_gvk("example.com", "v1", "Widget") is None


def test_reachable_includes_transitive_refs():
    names = schemas.reachable([DEPLOYMENT])
    assert "io.k8s.api.core.v1.Container" in names
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in names
    assert "io.k8s.api.batch.v1.Job" not in names
