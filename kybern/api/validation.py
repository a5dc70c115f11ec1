"""Schema validation of objects against the upstream OpenAPI definitions: wrong
types, missing required fields, unsupported enum values, and unknown fields.

It runs on every write, so each definition is compiled once into a tree of small
closures (`_compile`) and reused; a Pod validates in tens of microseconds.

Two wordings exist upstream and both are offered:
- Built-in kinds are decoded into Go structs, so a wrong type is a 400 BadRequest
  `Deployment in version "v1" cannot be handled as a Deployment: json: cannot
  unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32`
  (`decode_error`), and an unknown field under fieldValidation=Strict is
  `... cannot be handled as a Deployment: strict decoding error: unknown field
  "spec.foo"` (`strict_error`).
- Schema-validated kinds (CRDs) answer 422 Invalid with causes such as
  `spec.replicas: Invalid value: "string": spec.replicas in body must be of type
  integer: "string"` — the `causes` returned by `validate`.

A quantity is rewritten in place as its canonical string, given as a JSON number
(`cpu: 2` -> "2") or as a string (`cpu: "0.75"` -> "750m"), as upstream's decoding
into resource.Quantity and encoding back does.

Required fields come from the schemas' `required` lists (which upstream derives
from Go fields without `omitempty`): a Go client always sends them, so a Python
component writing an object must too (e.g. containerStatuses[].imageID).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, NamedTuple

import orjson

from kybern.api import schemas
from kybern.machinery.errors import StatusError, bad_request, cause, required
from kybern.machinery.quantity import canonical

_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
QUANTITY_MESSAGE = ("quantities must match the regular expression "
                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


class TypeError_(NamedTuple):
    """One wrong-typed value, with what Go's decoder would say about it."""
    field: str        # spec.template.spec.containers[0].ports[0].containerPort
    go_path: str      # spec.template.spec.containers.ports.containerPort (Go omits indexes)
    struct: str       # ContainerPort
    go_type: str      # int32
    value: Any


class Result(NamedTuple):
    causes: list[dict[str, str]]
    unknown: list[str]
    type_errors: list[TypeError_]


class _Ctx:
    __slots__ = ("causes", "unknown", "type_errors", "check_required")

    def __init__(self, check_required: bool) -> None:
        self.causes: list[dict[str, str]] = []
        self.unknown: list[str] = []
        self.type_errors: list[TypeError_] = []
        self.check_required = check_required


# A compiled validator: (value, field path, Go path, Go struct name, ctx) -> None
Check = Callable[[Any, str, str, str, _Ctx], None]

_compiled: dict[str, Check] = {}
schemas.on_change(_compiled.clear)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _show(value: Any) -> str:
    """Value rendering close to upstream's `%q`/`%v` in field errors."""
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return orjson.dumps(value).decode()


def _type_error(ctx: _Ctx, value: Any, path: str, go_path: str, struct: str,
                schema: dict[str, Any], type_name: str) -> None:
    field = path or "<root>"
    ctx.causes.append(cause(
        path, f"Invalid value: {_show(value)}: {field} in body must be of type {type_name}: "
        f"{_show(value)}"))
    ctx.type_errors.append(TypeError_(path, go_path, struct, schemas.go_type(schema), value))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ---------------------------------------------------------------------------
# compilation


def _compile_ref(name: str) -> Check:
    """Late-bound: recursive definitions (JSONSchemaProps) compile lazily on first use."""
    def check(value: Any, path: str, go_path: str, struct: str, ctx: _Ctx) -> None:
        fn = _compiled.get(name)
        if fn is None:
            fn = _compile_definition(name)
        fn(value, path, go_path, struct, ctx)
    return check


def _compile_definition(name: str) -> Check:
    schema = schemas.definition(name)
    if schema is None:
        fn: Check = _accept_any
    else:
        fn = _compile(schema, schemas.short_name(name), outer={"$ref": "#/definitions/" + name})
    _compiled[name] = fn
    return fn


def _accept_any(value: Any, path: str, go_path: str, struct: str, ctx: _Ctx) -> None:
    return None


# Leaf checks that any value of one exact type passes are skipped by their
# parent (no call, no field path built): most fields of an object are such
# strings and booleans, and the path strings were most of validation's cost.
_ANY = object  # passes: any value


def _passes(check: Check, leaf_type: type) -> Check:
    check.passes = leaf_type  # type: ignore[attr-defined]
    return check


def _passing(check: Check) -> type | None:
    """The exact type every value of which `check` accepts, if there is one."""
    return getattr(check, "passes", None)


_passes(_accept_any, _ANY)


def _compile(schema: dict[str, Any], struct_name: str, outer: dict[str, Any]) -> Check:
    """Compile one schema node. `struct_name` is the Go struct a field of this node
    belongs to; `outer` is the node as written (keeps format/$ref for Go type names)."""
    ref = schemas.ref_name(schema)
    if ref is not None:
        if ref == schemas.INT_OR_STRING:
            return _int_or_string(outer)
        if ref == schemas.QUANTITY:
            return _quantity
        return _compile_ref(ref)
    if schema.get("format") == "int-or-string" or schema.get("x-kubernetes-int-or-string"):
        return _int_or_string(outer)
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return _accept_any
    t = schema.get("type")
    enum = schema.get("enum")
    if t == "object" or "properties" in schema:
        return _object(schema, struct_name, outer)
    if t == "array":
        return _array(schema, struct_name, outer)
    if t == "string":
        return _string(outer, enum)
    if t == "integer":
        return _integer(outer, enum)
    if t == "number":
        return _number(outer, enum)
    if t == "boolean":
        return _boolean(outer)
    return _accept_any


def _string(schema: dict[str, Any], enum: list[Any] | None) -> Check:
    def check(value: Any, path: str, go_path: str, struct: str, ctx: _Ctx) -> None:
        if not isinstance(value, str):
            _type_error(ctx, value, path, go_path, struct, schema, "string")
        elif enum is not None and value not in enum:
            _not_supported(ctx, path, value, enum)
    return _passes(check, str) if enum is None else check


def _number(schema: dict[str, Any], enum: list[Any] | None) -> Check:
    def check(value: Any, path: str, go_path: str, struct: str, ctx: _Ctx) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _type_error(ctx, value, path, go_path, struct, schema, "number")
        elif enum is not None and value not in enum:
            _not_supported(ctx, path, value, enum)
    return check


_INT_RANGES = {"int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1)}


def _integer(schema: dict[str, Any], enum: list[Any] | None) -> Check:
    lo, hi = _INT_RANGES.get(schema.get("format", "int64"), _INT_RANGES["int64"])

    def check(value: Any, path: str, go_path: str, struct: str, ctx: _Ctx) -> None:
        # Go's decoder refuses any JSON number with a fraction or exponent part for an
        # integer field (`3.0` too), and one that overflows the field's type
        if isinstance(value, bool) or not isinstance(value, int):
            _type_error(ctx, value, path, go_path, struct, schema, "integer")
        elif not lo <= value <= hi:  # Go's decoder overflows the field's type
            _type_error(ctx, value, path, go_path, struct, schema, "integer")
        elif enum is not None and value not in enum:
            _not_supported(ctx, path, value, enum)
    return check


def _boolean(schema: dict[str, Any]) -> Check:
    def check(value: Any, path: str, go_path: str, struct: str, ctx: _Ctx) -> None:
        if not isinstance(value, bool):
            _type_error(ctx, value, path, go_path, struct, schema, "boolean")
    return _passes(check, bool)


def _int_or_string(schema: dict[str, Any]) -> Check:
    def check(value: Any, path: str, go_path: str, struct: str, ctx: _Ctx) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            _type_error(ctx, value, path, go_path, struct, schema, "integer,string")
    return check


def _quantity(value: Any, path: str, go_path: str, struct: str, ctx: _Ctx) -> None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        _type_error(ctx, value, path, go_path, struct, {"$ref": "#/definitions/" + schemas.QUANTITY},
                    "string")
    elif isinstance(value, str) and not _QUANTITY_RE.match(value):
        ctx.causes.append(cause(path, f"Invalid value: {_show(value)}: {QUANTITY_MESSAGE}"))
        ctx.type_errors.append(TypeError_(path, go_path, struct, "quantity", value))


def quantity_text(number: int | float) -> str:
    """A quantity given as a JSON number, as upstream stores it: Quantity decodes the
    number's text and serializes its canonical string (`cpu: 2` -> "2", `0.5` ->
    "500m", `1000000000` -> "1G"), so every reader sees a string, as the official
    clients expect. (A float's text is Python's: 1e9 reads as 1000000000.0, "1G";
    upstream keeps "1e9" from the JSON text `1e+09`.)"""
    return canonical(repr(number) if isinstance(number, float) and "e" in repr(number) else number)


@functools.lru_cache(maxsize=4096)
def _canonical_string(text: str) -> str:
    try:
        return canonical(text)
    except Exception:  # left as written: the regex passed it, the parser did not
        return text


def _stored_quantity(value: Any) -> Any:
    """A quantity as upstream stores it: Quantity decodes a string too and writes its
    canonical form back (`cpu: "0.75"` -> "750m", `memory: 1.5Gi` -> "1536Mi",
    `1024Mi` -> "1Gi"), as the "Configure Default CPU Requests" page shows."""
    if type(value) in (int, float):
        return quantity_text(value)
    if type(value) is str and _QUANTITY_RE.match(value):
        return _canonical_string(value)
    return value


def _not_supported(ctx: _Ctx, path: str, value: Any, enum: list[Any]) -> None:
    supported = ", ".join(_show(v) for v in enum)
    ctx.causes.append(cause(path, f"Unsupported value: {_show(value)}: supported values: {supported}",
                            "FieldValueNotSupported"))


def _array(schema: dict[str, Any], struct_name: str, outer: dict[str, Any]) -> Check:
    items = schema.get("items")
    item_check = _compile(items, struct_name, items) if isinstance(items, dict) else _accept_any

    passes = _passing(item_check)

    def check(value: Any, path: str, go_path: str, struct: str, ctx: _Ctx) -> None:
        if not isinstance(value, list):
            _type_error(ctx, value, path, go_path, struct, outer, "array")
            return
        if passes is _ANY:
            return
        for i, item in enumerate(value):
            if item is not None and type(item) is not passes:
                item_check(item, f"{path}[{i}]", go_path, struct, ctx)
    return check


def _object(schema: dict[str, Any], struct_name: str, outer: dict[str, Any]) -> Check:
    # field -> (check, type its values pass as without a call, or None)
    props: dict[str, tuple[Check, type | None]] = {}
    for pname, pschema in (schema.get("properties") or {}).items():
        target = schemas.ref_name(pschema)
        child_struct = schemas.short_name(target) if target else struct_name
        fn = _compile(pschema, child_struct, pschema)
        props[pname] = (fn, _passing(fn))
    extra = schema.get("additionalProperties")
    extra_check: Check | None = None
    if isinstance(extra, dict):
        extra_check = _compile(extra, struct_name, extra)
    elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields") or (
            not props and extra is None):
        extra_check = _accept_any  # free-form object (RawExtension, FieldsV1, preserve-unknown)
    extra_passes = _passing(extra_check) if extra_check is not None else None
    required_fields = tuple(schema.get("required") or ())
    has_props = bool(props)

    def check(value: Any, path: str, go_path: str, struct: str, ctx: _Ctx) -> None:
        if not isinstance(value, dict):
            _type_error(ctx, value, path, go_path, struct, outer, "object")
            return
        for key, item in value.items():
            entry = props.get(key) if has_props else None
            if entry is not None:
                if item is not None:
                    fn, passes = entry
                    if passes is _ANY or type(item) is passes:
                        continue
                    # The Go struct owning field `key` is this object's own type.
                    fn(item, f"{path}.{key}" if path else key,
                       f"{go_path}.{key}" if go_path else key, struct_name, ctx)
                    if fn is _quantity:
                        value[key] = _stored_quantity(item)
            elif extra_check is not None:
                if item is not None and extra_passes is not _ANY and type(item) is not extra_passes:
                    extra_check(item, f"{path}[{key}]" if path else key,
                                f"{go_path}.{key}" if go_path else key, struct_name, ctx)
                    if extra_check is _quantity:
                        value[key] = _stored_quantity(item)
            else:
                ctx.unknown.append(f"{path}.{key}" if path else key)
        if required_fields and ctx.check_required:
            for name in required_fields:
                if value.get(name) is None:
                    ctx.causes.append(required(_join(path, name)))
    return check


def _validator(definition: str) -> Check:
    fn = _compiled.get(definition)
    if fn is None:
        fn = _compile_definition(definition)
    return fn


# ---------------------------------------------------------------------------
# public API


def check(obj: dict[str, Any], definition: str, *, root: str = "",
          check_required: bool = True) -> Result:
    """Validate `obj` against `definition`; everything found, including the details
    needed for upstream's decode errors."""
    ctx = _Ctx(check_required)
    _validator(definition)(obj, root, root, schemas.short_name(definition), ctx)
    return Result(ctx.causes, ctx.unknown, ctx.type_errors)


def validate(obj: dict[str, Any], definition: str, *, root: str = "",
             check_required: bool = True) -> tuple[list[dict[str, str]], list[str]]:
    """(causes, unknown): causes are {"type","message","field"} dicts for 422 Invalid;
    unknown are field paths like `spec.foo` or `spec.containers[0].foo`."""
    result = check(obj, definition, root=root, check_required=check_required)
    return result.causes, result.unknown


def unknown_field_messages(unknown: list[str]) -> list[str]:
    """Upstream's per-field wording, also used verbatim for fieldValidation=Warn warnings."""
    return [f'unknown field "{path}"' for path in unknown]


def strict_error(kind: str, api_version: str, unknown: list[str]) -> StatusError:
    """400 for fieldValidation=Strict, as kube-apiserver words it."""
    version = api_version.rsplit("/", 1)[-1]
    joined = ", ".join(unknown_field_messages(unknown))
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: '
                       f"strict decoding error: {joined}")


def decode_error(kind: str, api_version: str, result: Result) -> StatusError | None:
    """400 for the first wrong-typed value, worded like Go's json decoder through
    kube-apiserver; None when there is no type error."""
    if not result.type_errors:
        return None
    err = result.type_errors[0]
    version = api_version.rsplit("/", 1)[-1]
    prefix = f'{kind} in version "{version}" cannot be handled as a {kind}: '
    if err.go_type == "quantity":
        return bad_request(prefix + QUANTITY_MESSAGE)
    what = _json_kind(err.value)
    if what == "number" and isinstance(err.value, float) and not err.value.is_integer():
        what = f"number {err.value!r}"
    elif what == "number" and isinstance(err.value, (int, float)):
        what = f"number {err.value:g}" if isinstance(err.value, float) else f"number {err.value}"
    if not err.go_path:
        return bad_request(f"{prefix}json: cannot unmarshal {what} into Go value of type "
                           f"{err.go_type}")
    return bad_request(f"{prefix}json: cannot unmarshal {what} into Go struct field "
                       f"{err.struct}.{err.go_path} of type {err.go_type}")


def _go_kind(value: Any) -> str:
    """The reflect.Kind of a value decoded into interface{} with ints preserved."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "slice" if isinstance(value, list) else "map"


def _go_float(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64), what fmt's %v prints for a float64."""
    if f != f or f in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(f)]
    mantissa, _, exp_s = f"{f:e}".partition("e")
    digits = repr(f).lstrip("-").replace(".", "").split("e")[0].lstrip("0").rstrip("0") or "0"
    exp = int(exp_s)
    if exp < -4 or exp >= 6 and exp >= len(digits) or exp >= 21:
        sign = "-" if f < 0 else ""
        frac = digits[1:]
        return f"{sign}{digits[0]}{'.' + frac if frac else ''}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    out = repr(f)
    return out[:-2] if out.endswith(".0") else out


def go_print(value: Any) -> str:
    """A decoded JSON value as Go's fmt %+v prints it (maps with sorted keys)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_print(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    return str(value)


def _converter_message(err: TypeError_) -> str:
    """What runtime.DefaultUnstructuredConverter.FromUnstructured says of a value
    that does not fit its Go field (k8s.io/apimachinery/pkg/runtime/converter.go)."""
    kind, target = _go_kind(err.value), err.go_type
    if target == "quantity":
        return QUANTITY_MESSAGE
    if target.startswith("map["):
        return f"cannot restore map from {kind}"
    if target.startswith("[]"):
        return f"cannot restore slice from {kind}"
    if target in ("string", "bool", "float64") or target.startswith(("int", "uint")):
        if kind == "int64" and target == "string":
            return "cannot convert int64 to string"  # Go can convert an int to a string (a rune)
        if kind == "float64" and target.startswith(("int", "uint")):
            return f"cannot convert float64 to {target}"
        return f"unrecognized type: {target}"
    if target == "intstr.IntOrString":
        return f"json: cannot unmarshal {_json_kind(err.value)} into Go value of type int32"
    return f"cannot restore struct from: {kind}"


def patch_convert_error(patch: dict[str, Any], definition: str) -> StatusError | None:
    """422 for a strategic merge patch whose values do not fit the kind's Go types:
    upstream converts the patched map into the Go struct and answers
    NewInvalid(GroupKind{}, "", patch: Invalid value: "<patch as %+v>": <converter error>)
    (applyPatchToObject in k8s.io/apiserver/pkg/endpoints/handlers/patch.go)."""
    result = check(patch, definition, check_required=False)
    # the converter takes a whole float into an integer field (Go's json decoder does not)
    errs = [e for e in result.type_errors if not (isinstance(e.value, float) and e.value.is_integer()
                                                   and e.go_type.startswith(("int", "uint")))]
    if not errs:
        return None
    from kybern.machinery.errors import invalid

    printed = go_print(patch).replace("\\", "\\\\").replace('"', '\\"')
    return invalid("", "", "", [cause("patch", f'Invalid value: "{printed}": {_converter_message(errs[0])}')])


def prune(obj: Any, definition: str) -> Any:
    """Drop unknown fields in place (fieldValidation=Ignore/Warn); returns obj."""
    schema = schemas.definition(definition)
    if schema is not None:
        _prune(obj, schema, 0)
    return obj


def _prune(value: Any, schema: dict[str, Any], depth: int) -> None:
    if depth > 100:
        return
    schema = schemas.resolve(schema) or {}
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props:
            for key in list(value):
                sub = props.get(key)
                if sub is None:
                    if isinstance(extra, dict):
                        _prune(value[key], extra, depth + 1)
                    elif extra is not True and not schema.get("x-kubernetes-preserve-unknown-fields"):
                        del value[key]
                elif value[key] is not None:
                    _prune(value[key], sub, depth + 1)
        elif isinstance(extra, dict):
            for item in value.values():
                _prune(item, extra, depth + 1)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                _prune(item, items, depth + 1)
