"""What a CRD's structural schema does to a custom resource: prune unknown
fields, apply defaults, validate — apiextensions-apiserver's pruning, defaulting
and schema validation (kube-openapi's validator with its errors turned into
field errors), for plain dict objects.

Order on every write, as upstream: prune (unknown fields, and nulls where the
schema does not allow them) → default → validate. The root `apiVersion`, `kind`
and `metadata` belong to the API machinery and are left to the generic store;
so do those of `x-kubernetes-embedded-resource` objects, which are kept.

Messages are upstream's, e.g.
`spec.replicas: Invalid value: "x": spec.replicas in body must be of type integer: "x"`,
`spec.size: Unsupported value: "XL": supported values: "S", "M"`,
`spec.count: Invalid value: 11: spec.count in body should be less than or equal to 10`.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

import orjson

from kybern.machinery import errors

Schema = dict[str, Any]
Cause = dict[str, str]
_ROOT_META = ("apiVersion", "kind", "metadata")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if value is None:
        return "null"
    return orjson.dumps(value).decode()


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _preserves(schema: Schema) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


# -- pruning ---------------------------------------------------------------------
def prune(obj: Any, schema: Schema, *, root: bool = True) -> list[str]:
    """Drop fields the schema does not declare, in place; returns their paths
    (for fieldValidation=Strict errors and Warn warnings)."""
    pruned: list[str] = []
    _prune(obj, schema, "", pruned, root=root)
    return pruned


def _prune(value: Any, schema: Schema, path: str, pruned: list[str], *, root: bool = False) -> None:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep_meta = root or schema.get("x-kubernetes-embedded-resource")
        for key in list(value):
            sub = props.get(key)
            if keep_meta and key in _ROOT_META and sub is None:
                continue
            if sub is None and isinstance(extra, dict):
                sub = extra
            if sub is None:
                if extra is True or _preserves(schema):
                    continue
                pruned.append(_join(path, key))
                del value[key]
                continue
            if value[key] is None:
                if not sub.get("nullable"):
                    del value[key]  # non-nullable nulls are pruned before defaulting
                continue
            _prune(value[key], sub, _join(path, key), pruned)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _prune(item, items, f"{path}[{i}]", pruned)


# -- defaulting ------------------------------------------------------------------
def default(value: Any, schema: Schema) -> None:
    """Fill in `default` values of absent fields, in place, recursively."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value and value[key] is not None:
                default(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            props = schema.get("properties") or {}
            for key, item in value.items():
                if key not in props and item is not None:
                    default(item, extra)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                if item is not None:
                    default(item, items)


# -- validation ------------------------------------------------------------------
def validate(obj: Any, schema: Schema) -> list[Cause]:
    """Every schema violation of `obj` as a field-error cause (422 Invalid)."""
    out: list[Cause] = []
    _validate(obj, schema, "", out, root=True)
    return out


def _type_ok(value: Any, t: str) -> bool:
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return not isinstance(value, bool) and (isinstance(value, int) or
                                                (isinstance(value, float) and value.is_integer()))
    if t == "number":
        return not isinstance(value, bool) and isinstance(value, (int, float))
    return True


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _invalid(out: list[Cause], path: str, value: Any, message: str, reason: str = "FieldValueInvalid") -> None:
    out.append(errors.cause(path, f"Invalid value: {_show(value)}: {message}", reason))


def _validate(value: Any, schema: Schema, path: str, out: list[Cause], *, root: bool = False) -> None:
    name = path or "<root>"
    if value is None:
        if not schema.get("nullable") and schema.get("type"):
            _invalid(out, path, value, f"{name} in body must be of type {schema['type']}: \"null\"",
                     "FieldValueTypeInvalid")
        return
    t = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            _invalid(out, path, value, f"{name} in body must be of type integer,string: \"{_json_type(value)}\"",
                     "FieldValueTypeInvalid")
            return
    elif t and not _type_ok(value, t):
        _invalid(out, path, value, f"{name} in body must be of type {t}: \"{_json_type(value)}\"",
                 "FieldValueTypeInvalid")
        return
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(_show(v) for v in enum)
        out.append(errors.cause(path, f"Unsupported value: {_show(value)}: supported values: {supported}",
                                "FieldValueNotSupported"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _numeric(value, schema, path, name, out)
    elif isinstance(value, str):
        _string(value, schema, path, name, out)
    elif isinstance(value, list):
        _array(value, schema, path, name, out)
    elif isinstance(value, dict):
        _object(value, schema, path, name, out, root=root)
    for sub in schema.get("allOf") or []:
        _validate(value, {k: v for k, v in sub.items() if k != "type"} | {"type": sub.get("type")}, path, out)
    if schema.get("anyOf") and not any(_passes(value, s, path) for s in schema["anyOf"]):
        _invalid(out, path, value, f"{name} in body must validate at least one schema (anyOf)")
    if schema.get("oneOf") and sum(_passes(value, s, path) for s in schema["oneOf"]) != 1:
        _invalid(out, path, value, f"{name} in body must validate one and only one schema (oneOf)")
    if isinstance(schema.get("not"), dict) and _passes(value, schema["not"], path):
        _invalid(out, path, value, f"{name} in body must not validate the schema (not)")


def _json_type(value: Any) -> str:
    """The type name kube-openapi prints for the value it got."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _passes(value: Any, schema: Schema, path: str) -> bool:
    probe: list[Cause] = []
    _validate(value, schema, path, probe)
    return not probe


def _numeric(value: float, schema: Schema, path: str, name: str, out: list[Cause]) -> None:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if lo is not None:
        if schema.get("exclusiveMinimum") and value <= lo:
            _invalid(out, path, value, f"{name} in body should be greater than {_num(lo)}")
        elif value < lo:
            _invalid(out, path, value, f"{name} in body should be greater than or equal to {_num(lo)}")
    if hi is not None:
        if schema.get("exclusiveMaximum") and value >= hi:
            _invalid(out, path, value, f"{name} in body should be less than {_num(hi)}")
        elif value > hi:
            _invalid(out, path, value, f"{name} in body should be less than or equal to {_num(hi)}")
    mult = schema.get("multipleOf")
    if mult and (value / mult) != int(value / mult):
        _invalid(out, path, value, f"{name} in body should be a multiple of {_num(mult)}")


def _num(v: float) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _string(value: str, schema: Schema, path: str, name: str, out: list[Cause]) -> None:
    n = len(value)
    if schema.get("maxLength") is not None and n > schema["maxLength"]:
        out.append(errors.cause(path, f"Too long: may not be more than {schema['maxLength']} bytes",
                                "FieldValueTooLong"))
    if schema.get("minLength") is not None and n < schema["minLength"]:
        _invalid(out, path, value, f"{name} in body should be at least {schema['minLength']} chars long")
    pattern = schema.get("pattern")
    if pattern:
        rx = _regex(pattern)
        if rx is not None and not rx.search(value):
            _invalid(out, path, value, f"{name} in body should match '{pattern}'")


def _array(value: list[Any], schema: Schema, path: str, name: str, out: list[Cause]) -> None:
    if schema.get("maxItems") is not None and len(value) > schema["maxItems"]:
        out.append(errors.cause(path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                                "FieldValueTooMany"))
    if schema.get("minItems") is not None and len(value) < schema["minItems"]:
        _invalid(out, path, len(value), f"{name} in body should have at least {schema['minItems']} items")
    if schema.get("uniqueItems") or schema.get("x-kubernetes-list-type") == "set":
        seen: set[bytes] = set()
        for i, item in enumerate(value):
            key = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
            if key in seen:
                out.append(errors.cause(f"{path}[{i}]", f"Duplicate value: {_show(item)}",
                                        "FieldValueDuplicate"))
            seen.add(key)
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, f"{path}[{i}]", out)


def _object(value: dict[str, Any], schema: Schema, path: str, name: str, out: list[Cause], *,
            root: bool) -> None:
    props = schema.get("properties") or {}
    for req in schema.get("required") or []:
        if req not in value:
            out.append(errors.required(_join(path, req)))
    count = len(value)
    if schema.get("maxProperties") is not None and count > schema["maxProperties"]:
        out.append(errors.cause(path, f"Too many: {count}: must have at most {schema['maxProperties']} items",
                                "FieldValueTooMany"))
    if schema.get("minProperties") is not None and count < schema["minProperties"]:
        _invalid(out, path, count, f"{name} in body should have at least {schema['minProperties']} properties")
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if (root or schema.get("x-kubernetes-embedded-resource")) and key in _ROOT_META and key not in props:
            continue
        sub = props.get(key)
        if sub is None and isinstance(extra, dict):
            sub = extra
        if sub is not None:
            _validate(item, sub, _join(path, key), out)


# -- the published OpenAPI definition ----------------------------------------------
_META_REF = "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1."
_API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an object. Servers "
                    "should convert recognized schemas to the latest internal value, and may reject "
                    "unrecognized values. More info: https://git.k8s.io/community/contributors/devel/"
                    "sig-architecture/api-conventions.md#resources")
_KIND_DOC = ("Kind is a string value representing the REST resource this object represents. Servers may "
             "infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. "
             "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
             "api-conventions.md#types-kinds")
_META_DOC = ("Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/"
             "sig-architecture/api-conventions.md#metadata")


def definition_name(group: str, version: str, kind: str) -> str:
    """Upstream's name for a CR's OpenAPI definition: `com.example.stable.v1.CronTab`."""
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


_EMBEDDED_API_VERSION_DOC = ("apiVersion defines the versioned schema of this representation of an object. "
                             "More info: https://git.k8s.io/community/contributors/devel/"
                             "sig-architecture/api-conventions.md#resources")
_EMBEDDED_KIND_DOC = ("kind is a string value representing the type of this object. In CamelCase. More info: "
                      "https://git.k8s.io/community/contributors/devel/sig-architecture/"
                      "api-conventions.md#types-kinds")


def add_embedded_properties(node: Any, *, v2: bool) -> None:
    """upstream's addEmbeddedProperties: every `x-kubernetes-embedded-resource` object gets
    apiVersion, kind and metadata properties, kind and apiVersion required. Not in the v2
    document under `x-kubernetes-preserve-unknown-fields` (kubectl's v2 validation would
    then refuse the unknown fields the schema allows)."""
    if isinstance(node, list):
        for x in node:
            add_embedded_properties(x, v2=v2)
        return
    if not isinstance(node, dict):
        return
    for key in ("properties", "patternProperties", "definitions"):
        for sub in (node.get(key) or {}).values():
            add_embedded_properties(sub, v2=v2)
    for key in ("items", "additionalProperties", "not"):
        add_embedded_properties(node.get(key), v2=v2)
    for key in ("allOf", "anyOf", "oneOf"):
        add_embedded_properties(node.get(key), v2=v2)
    if v2 and node.get("x-kubernetes-preserve-unknown-fields") is True:
        return
    if node.get("x-kubernetes-embedded-resource") is True:
        embed(node)


def embed(node: Schema) -> None:
    """An embedded resource's apiVersion, kind and metadata, added to its schema."""
    props = node.setdefault("properties", {})
    props["apiVersion"] = {"description": _EMBEDDED_API_VERSION_DOC, "type": "string"}
    props["kind"] = {"description": _EMBEDDED_KIND_DOC, "type": "string"}
    props["metadata"] = {"description": _META_DOC, "$ref": _META_REF + "ObjectMeta"}
    required = node.setdefault("required", [])
    for f in ("kind", "apiVersion"):
        if f not in required:
            required.append(f)


def object_definition(schema: Schema | None, group: str, version: str, kind: str) -> Schema:
    """The CR schema as published in /openapi: apiVersion, kind and metadata added, at the
    root and (as the v2 document has them; /openapi/v3 adds the rest, openapi.py) in
    embedded resources."""
    out = copy.deepcopy(schema) if schema else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    out.setdefault("type", "object")
    props = out.setdefault("properties", {})
    add_embedded_properties(out, v2=True)
    props["apiVersion"] = {"description": _API_VERSION_DOC, "type": "string"}
    props["kind"] = {"description": _KIND_DOC, "type": "string"}
    props["metadata"] = {"description": _META_DOC, "$ref": _META_REF + "ObjectMeta"}
    return out


def to_v2(definition: Schema) -> Schema:
    """A CR definition as /openapi/v2 publishes it (upstream's buildKubeNative and
    ToStructuralOpenAPIV2): kubectl's v2 validation reports every field it has no property
    for, so a root that preserves unknown fields is published as a bare object, and nested
    nodes lose what v2 cannot express (junctors, nullable types, properties where unknown
    fields are kept)."""
    if _preserves(definition):
        out: Schema = {"type": "object"}
        if "x-kubernetes-group-version-kind" in definition:
            out["x-kubernetes-group-version-kind"] = definition["x-kubernetes-group-version-kind"]
        return out
    return _v2_node(definition)


def _v2_node(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    s = {k: v for k, v in node.items() if k not in ("allOf", "oneOf", "anyOf", "not")}
    props = s.get("properties")
    if isinstance(props, dict) and isinstance(s.get("required"), list):
        # a nullable field may be sent as null, which v2 reads as absent
        s["required"] = [f for f in s["required"] if not (props.get(f) or {}).get("nullable")] or None
    extra = s.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("nullable"):
        s["required"] = None
    if s.get("required") is None:
        s.pop("required", None)
    if s.pop("nullable", False):
        for k in ("type", "items", "properties"):
            s.pop(k, None)
    if _preserves(s):
        s.pop("items", None)
        s.pop("properties", None)
    if s.get("type") == "array" and "items" not in s:
        s.pop("type")
    if _preserves(s) and s.get("type") == "object":
        s.pop("type")
    if isinstance(s.get("properties"), dict):
        s["properties"] = {k: _v2_node(v) for k, v in s["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(s.get(key), dict):
            s[key] = _v2_node(s[key])
    return s


def list_definition(group: str, version: str, kind: str) -> Schema:
    item = definition_name(group, version, kind)
    return {"description": f"{kind}List is a list of {kind}", "type": "object", "required": ["items"],
            "properties": {
                "apiVersion": {"description": _API_VERSION_DOC, "type": "string"},
                "items": {"description": f"List of {kind.lower()}s. More info: https://git.k8s.io/community/"
                          "contributors/devel/sig-architecture/api-conventions.md",
                          "type": "array", "items": {"$ref": "#/definitions/" + item}},
                "kind": {"description": _KIND_DOC, "type": "string"},
                "metadata": {"description": "Standard list metadata. More info: https://git.k8s.io/"
                             "community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                             "$ref": _META_REF + "ListMeta"}}}
