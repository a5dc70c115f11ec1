"""Embedded resources in a CRD's published OpenAPI (upstream's addEmbeddedProperties)."""

from kybern.api import crschema, openapi

SCHEMA = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
    "strict": {"type": "object", "x-kubernetes-embedded-resource": True,
               "properties": {"data": {"type": "object"}}},
    "loose": {"type": "object", "x-kubernetes-embedded-resource": True,
              "x-kubernetes-preserve-unknown-fields": True}}}}}


def test_v2_definition_adds_them_only_where_unknown_fields_are_not_kept():
    d = crschema.object_definition(SCHEMA, "example.com", "v1", "Widget")
    spec = d["properties"]["spec"]["properties"]
    assert set(spec["strict"]["properties"]) == {"data", "apiVersion", "kind", "metadata"}
    assert spec["strict"]["required"] == ["kind", "apiVersion"]
    assert "properties" not in spec["loose"]


def test_v3_document_has_them_everywhere():
    d = openapi._to_v3(crschema.object_definition(SCHEMA, "example.com", "v1", "Widget"))
    loose = d["properties"]["spec"]["properties"]["loose"]
    assert set(loose["properties"]) == {"apiVersion", "kind", "metadata"}
    assert loose["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    assert loose["required"] == ["kind", "apiVersion"]


def test_v2_publishes_what_kubectls_v2_validation_can_read():
    # upstream's buildKubeNative / ToStructuralOpenAPIV2
    root = crschema.object_definition({"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                       "properties": {"spec": {"type": "object"}}}, "example.com", "v1", "W")
    root["x-kubernetes-group-version-kind"] = [{"group": "example.com", "version": "v1", "kind": "W"}]
    assert crschema.to_v2(root) == {"type": "object", "x-kubernetes-group-version-kind": root[
        "x-kubernetes-group-version-kind"]}
    nested = crschema.to_v2({"type": "object", "required": ["a", "b"], "properties": {
        "a": {"type": "string", "nullable": True},
        "b": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"x": {}}},
        "c": {"type": "array", "x-kubernetes-preserve-unknown-fields": True, "items": {"type": "string"}},
        "d": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}}})
    assert nested["required"] == ["b"]
    assert nested["properties"] == {"a": {}, "b": {"x-kubernetes-preserve-unknown-fields": True},
                                    "c": {"x-kubernetes-preserve-unknown-fields": True},
                                    "d": {"x-kubernetes-int-or-string": True}}
