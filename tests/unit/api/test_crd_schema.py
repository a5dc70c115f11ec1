"""What a CRD's structural schema does to custom resources (prune, default,
validate) and the JSONPath subset of printer columns."""

from kybern.api import crprinter, crschema

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "string", "enum": ["S", "M"]},
            "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
            "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
            "port": {"x-kubernetes-int-or-string": True},
            "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "opt": {"type": "string", "nullable": True},
            "nested": {"type": "object", "default": {}, "properties": {
                "mode": {"type": "string", "default": "fast"}}},
        }},
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}


def obj(**spec):
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}


def messages(o):
    return sorted(f"{c['field']}: {c['message']}" for c in crschema.validate(o, SCHEMA))


def test_prune_drops_unknown_fields_and_keeps_preserved_ones():
    o = obj(size="S", bogus=1, free={"any": {"thing": 1}}, labels={"a": "b"})
    o["top"] = 1
    pruned = crschema.prune(o, SCHEMA)
    assert sorted(pruned) == ["spec.bogus", "top"]
    assert o["spec"]["free"] == {"any": {"thing": 1}} and o["spec"]["labels"] == {"a": "b"}
    assert o["metadata"] == {"name": "w"}  # the machinery's fields stay


def test_prune_drops_non_nullable_nulls_and_keeps_nullable_ones():
    o = obj(size="S", replicas=None, opt=None)
    crschema.prune(o, SCHEMA)
    assert "replicas" not in o["spec"] and o["spec"]["opt"] is None
    crschema.default(o, SCHEMA)
    assert o["spec"]["replicas"] == 1


def test_defaults_apply_recursively_into_defaulted_objects():
    o = obj(size="S")
    crschema.default(o, SCHEMA)
    assert o["spec"]["replicas"] == 1 and o["spec"]["nested"] == {"mode": "fast"}
    assert "status" not in o


def test_valid_object_has_no_causes():
    assert messages(obj(size="M", replicas=3, name="abc", port="http", tags=["a"])) == []
    assert messages(obj(size="M", port=8080)) == []


def test_errors_are_worded_as_upstream_with_field_paths():
    got = messages(obj(size="XL", replicas=11, name="ABCDEFG", port=1.5, tags=["a", "b", "c"],
                       labels={"k": 1}))
    assert got == sorted([
        'spec.size: Unsupported value: "XL": supported values: "S", "M"',
        "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
        "spec.name: Too long: may not be more than 5 bytes",
        "spec.name: Invalid value: \"ABCDEFG\": spec.name in body should match '^[a-z]+$'",
        'spec.port: Invalid value: 1.5: spec.port in body must be of type integer,string: "number"',
        "spec.tags: Too many: 3: must have at most 2 items",
        'spec.labels.k: Invalid value: 1: spec.labels.k in body must be of type string: "integer"',
    ])


def test_type_and_required_errors():
    assert messages(obj(replicas="x")) == [
        'spec.replicas: Invalid value: "x": spec.replicas in body must be of type integer: "string"',
        "spec.size: Required value"]
    assert messages({"spec": "nope"}) == [
        'spec: Invalid value: "nope": spec in body must be of type object: "string"']


def test_published_definition_adds_api_machinery_fields():
    d = crschema.object_definition(SCHEMA, "example.com", "v1", "Widget")
    assert set(d["properties"]) >= {"apiVersion", "kind", "metadata", "spec", "status"}
    assert crschema.definition_name("stable.example.com", "v1", "CronTab") == "com.example.stable.v1.CronTab"
    assert "metadata" not in SCHEMA["properties"]  # the CRD's own schema is not mutated


def test_printer_columns_jsonpath_subset():
    o = {"metadata": {"name": "w", "creationTimestamp": "2020-01-01T00:00:00Z"},
         "spec": {"replicas": 3, "items": [{"name": "a"}, {"name": "b"}]},
         "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}}
    cols = [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "First", "type": "string", "jsonPath": ".spec.items[0].name"},
            {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    defs, row = crprinter.printer(cols)
    assert [d[0] for d in defs] == ["Name", "Replicas", "Ready", "First", "Missing", "Age"]
    cells = row(o)
    assert cells[:5] == ["w", 3, "True", "a", None]
    assert cells[5].endswith("y") or cells[5].endswith("d")  # an age such as "6y" or "2190d"
    assert crprinter.parse(".spec['a.b']") == [("key", "spec"), ("key", "a.b")]


def test_default_printer_is_name_and_age():
    defs, _row = crprinter.printer([])
    assert [d[0] for d in defs] == ["Name", "Age"]
