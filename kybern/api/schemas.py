"""The OpenAPI definitions of every Kubernetes type: where they come from and how
to walk them.

The upstream v1.32 definitions ship inside the `kubernetes-validate` package as
JSON-schema (`"type": ["string", "null"]`, `$ref: "#/$defs/..."`, IntOrString and
Quantity as `oneOf`). We convert them once, lazily, into the swagger-2.0 form the
kube-apiserver publishes (`"type": "string"`, `$ref: "#/definitions/<name>"`,
IntOrString as `{"type": "string", "format": "int-or-string"}`), keeping the
descriptions and every `x-kubernetes-*` extension (patch strategies, merge keys,
list types, group-version-kind). That one dict is what OpenAPI documents,
validation and strategic merge patch all read.

Extra definitions (CRD schemas) can be registered at runtime; `generation()`
changes whenever the set changes so caches built on top can tell they are stale.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import orjson

Schema = dict[str, Any]

_PACKAGE = "kubernetes_validate"
_DEFINITIONS_FILE = "kubernetes-json-schema/v1.32.0-local/_definitions.json"
_REF_PREFIX = "#/definitions/"
_JSON_SCHEMA_REF_PREFIX = "#/$defs/"

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

# kubernetes-validate lacks the descriptions of the two oneOf types; these are upstream's.
_SPECIAL: dict[str, Schema] = {
    INT_OR_STRING: {
        "description": "IntOrString is a type that can hold an int32 or a string.  When used in "
        "JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type.  "
        "This allows you to have, for example, a JSON field that can accept a name or number.",
        "type": "string",
        "format": "int-or-string",
        "x-kubernetes-int-or-string": True,
    },
    QUANTITY: {
        "description": "Quantity is a fixed-point representation of a number. It provides "
        "convenient marshaling/unmarshaling in JSON and YAML, in addition to String() and "
        "AsInt64() accessors.\n\nThe serialization format is:\n\n``` <quantity>        ::= "
        "<signedNumber><suffix>\n```\n\nExamples: \"100m\" (0.1), \"1Gi\", \"500Mi\", \"2\".",
        "type": "string",
    },
}

_lock = threading.Lock()
_builtin: dict[str, Schema] | None = None
_extra: dict[str, Schema] = {}
_merged: dict[str, Schema] | None = None
_gvk_index: dict[tuple[str, str, str], str] | None = None
_generation = 0


# ---------------------------------------------------------------------------
# loading and conversion


def _convert(node: Any) -> Any:
    """JSON-schema node -> swagger 2.0 node (recursively, returns a new object)."""
    if isinstance(node, list):
        return [_convert(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = _REF_PREFIX + value[len(_JSON_SCHEMA_REF_PREFIX):] \
                if value.startswith(_JSON_SCHEMA_REF_PREFIX) else value
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            out[key] = types[0] if len(types) == 1 else types
        elif key == "properties":
            props = {}
            for pname, pschema in value.items():
                p = _convert(pschema)
                # kubernetes-validate pins apiVersion/kind with an enum; upstream does not
                # (and kubectl explain would print it), so drop it.
                if pname in ("apiVersion", "kind"):
                    p.pop("enum", None)
                props[pname] = p
            out[key] = props
        elif key in ("items", "additionalProperties", "not") or key in ("allOf", "anyOf", "oneOf"):
            out[key] = _convert(value)
        else:
            out[key] = value
    return out


def _definitions_path() -> Path:
    # find_spec locates the package without importing it: kubernetes_validate's
    # __init__ pulls in jsonschema & co, which costs ~120 ms we do not need.
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{_PACKAGE} is not installed; it ships the Kubernetes OpenAPI definitions")
    return Path(next(iter(spec.submodule_search_locations))) / _DEFINITIONS_FILE


def _load_builtin() -> dict[str, Schema]:
    raw = _definitions_path().read_bytes()
    defs = orjson.loads(raw)["$defs"]
    out = {name: _convert(schema) for name, schema in defs.items()}
    out.update({k: dict(v) for k, v in _SPECIAL.items()})
    return out


def _ensure() -> dict[str, Schema]:
    global _builtin, _merged
    merged = _merged
    if merged is not None:
        return merged
    with _lock:
        if _builtin is None:
            _builtin = _load_builtin()
        if _merged is None:
            _merged = {**_builtin, **_extra}
        return _merged


def definitions() -> dict[str, Schema]:
    """All definitions by name, swagger-2.0 form. Do not mutate the result."""
    return _ensure()


def definition(name: str) -> Schema | None:
    return _ensure().get(name)


def generation() -> int:
    """Changes whenever register()/unregister() changes the set of definitions."""
    return _generation


def register(name: str, schema: Schema, *, gvks: Iterable[dict[str, str]] = ()) -> None:
    """Add (or replace) a definition at runtime, e.g. a CRD's openAPIV3Schema.
    `schema` is in swagger form: refs, if any, are `#/definitions/<name>`."""
    global _merged, _gvk_index, _generation
    schema = dict(schema)
    gvks = list(gvks)
    if gvks:
        schema["x-kubernetes-group-version-kind"] = gvks
    with _lock:
        _extra[name] = schema
        _merged = None
        _gvk_index = None
        _generation += 1
    _clear_caches()


def registered() -> frozenset[str]:
    """Names of the definitions added at runtime (CRD schemas)."""
    with _lock:
        return frozenset(_extra)


def unregister(name: str) -> None:
    global _merged, _gvk_index, _generation
    with _lock:
        if _extra.pop(name, None) is None:
            return
        _merged = None
        _gvk_index = None
        _generation += 1
    _clear_caches()


_cache_clearers: list[Callable[[], None]] = []


def on_change(clear: Callable[[], None]) -> None:
    """Register a callback run when definitions change (validation and OpenAPI caches)."""
    _cache_clearers.append(clear)


def _clear_caches() -> None:
    _field_schema_cached.cache_clear()
    for clear in _cache_clearers:
        clear()


# ---------------------------------------------------------------------------
# lookups


def definition_for_gvk(group: str, version: str, kind: str) -> str | None:
    """Name of the definition carrying x-kubernetes-group-version-kind (group, version, kind)."""
    global _gvk_index
    index = _gvk_index
    if index is None:
        index = {}
        for name, schema in _ensure().items():
            for gvk in schema.get("x-kubernetes-group-version-kind", ()):
                key = (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
                index.setdefault(key, name)
        _gvk_index = index
    return index.get((group, version, kind))


def ref_name(schema: Schema) -> str | None:
    """`#/definitions/io.k8s...Pod` -> `io.k8s...Pod` (also accepts v3 component refs)."""
    ref = schema.get("$ref")
    if not ref:
        return None
    return ref.rsplit("/", 1)[-1]


def resolve(schema: Schema | None) -> Schema | None:
    """Follow `$ref` (and single-element `allOf`, as OpenAPI v3 documents wrap refs)."""
    seen = 0
    while schema is not None:
        if "$ref" in schema:
            schema = _ensure().get(ref_name(schema) or "")
        elif "allOf" in schema and len(schema["allOf"]) == 1 and "properties" not in schema:
            schema = schema["allOf"][0]
        else:
            return schema
        seen += 1
        if seen > 64:  # a ref cycle without any structure in between
            return None
    return None


def short_name(definition_name: str) -> str:
    """`io.k8s.api.apps.v1.DeploymentSpec` -> `DeploymentSpec`."""
    return definition_name.rsplit(".", 1)[-1]


def go_type(schema: Schema | None) -> str:
    """The Go type name upstream's JSON decoder would print for this schema
    (used to reproduce `cannot unmarshal ... of type int32`)."""
    if schema is None:
        return "interface {}"
    name = ref_name(schema)
    if name:
        if name == INT_OR_STRING:
            return "intstr.IntOrString"
        if name == QUANTITY:
            return "resource.Quantity"
        parts = name.rsplit(".", 2)
        return f"{parts[-2]}.{parts[-1]}"
    t = schema.get("type")
    if t == "string":
        return "string"
    if t == "boolean":
        return "bool"
    if t == "integer":
        return schema.get("format") or "int"
    if t == "number":
        return "float64"
    if t == "array":
        return "[]" + go_type(schema.get("items"))
    if t == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "map[string]" + go_type(schema["additionalProperties"])
    return "map[string]interface {}" if t == "object" else "interface {}"


def field_schema(definition_name: str, path: list[str] | tuple[str, ...]) -> Schema | None:
    """The schema found at `path` inside a definition, e.g.
    `field_schema("io.k8s.api.apps.v1.Deployment", ["spec", "template", "spec", "containers"])`.

    Arrays are stepped through automatically (like `kubectl explain`), so
    `[..., "containers", "name"]` reaches Container.name; a path element may also be a
    list index or `[]`. Map (additionalProperties) levels consume one element (the key).
    The result is the schema *as written at that spot* (not ref-resolved) so that the
    x-kubernetes-patch-* extensions on list fields stay visible; call resolve() for the type.
    """
    return _field_schema_cached(definition_name, tuple(path))


@lru_cache(maxsize=8192)
def _field_schema_cached(definition_name: str, path: tuple[str, ...]) -> Schema | None:
    current: Schema | None = _ensure().get(definition_name)
    if current is None:
        return None
    i = 0
    while i < len(path):
        resolved = resolve(current)
        if resolved is None:
            return None
        step = path[i]
        props = resolved.get("properties")
        if props is not None and step in props:
            current = props[step]
            i += 1
            continue
        if "items" in resolved:
            current = resolved["items"]
            if step == "[]" or step.isdigit():
                i += 1
            continue
        extra = resolved.get("additionalProperties")
        if isinstance(extra, dict):
            current = extra
            i += 1
            continue
        return None
    return current


def lookup(definition_name: str) -> Callable[[tuple[str, ...]], Schema | None]:
    """A `path -> schema` function for strategic merge patch (see kybern.machinery.patch)."""
    def find(path: tuple[str, ...]) -> Schema | None:
        return _field_schema_cached(definition_name, path)
    return find


def reachable(roots: Iterable[str]) -> set[str]:
    """Names of the definitions `roots` refer to, transitively (roots included)."""
    defs = _ensure()
    out: set[str] = set()
    stack = [r for r in roots if r in defs]
    while stack:
        name = stack.pop()
        if name in out:
            continue
        out.add(name)
        _collect_refs(defs[name], stack, out)
    return out


def _collect_refs(node: Any, stack: list[str], seen: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                stack.append(name)
        for value in node.values():
            if isinstance(value, (dict, list)):
                _collect_refs(value, stack, seen)
    elif isinstance(node, list):
        for value in node:
            _collect_refs(value, stack, seen)
