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
