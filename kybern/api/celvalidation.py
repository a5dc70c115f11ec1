"""CRD validation rules: the `x-kubernetes-validations` of a structural schema,
as apiextensions-apiserver's pkg/apiserver/schema/cel does them.

`Validator.build(schema)` compiles every rule of one CRD version once (None
when the schema has none: a kind without rules pays nothing per request).
`Validator.validate(obj, old)` walks the object with the schema: each rule runs
with `self` bound to the value at its node (absent or null values are not
validated); transition rules (those naming `oldSelf`) run only on an update
where the old value can be correlated (object properties, map values, items of
`x-kubernetes-list-type: map` lists by their keys), unless the rule sets
`optionalOldSelf`, then `oldSelf` is an optional (`oldSelf.hasValue()`,
`oldSelf.value()`, `oldSelf.orValue(x)`). A failing rule is a cause
`<path>: Invalid value: "<schema type>": <message>` (message, messageExpression,
or `failed rule: <rule>`), at `fieldPath` when set, of the `reason`'s type.
Errors of rules without oldSelf on a value an update leaves unchanged are
warnings (CRD validation ratcheting, on by default in 1.32).

`crd_causes(schema, path)` is the CRD's side: rules that do not compile,
messages with line breaks, unknown reasons, field paths that name no field.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from celpy import celtypes

from kybern.api import cel
from kybern.api.crd import has_validation_rules as has_rules
from kybern.machinery import errors

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Cause = dict[str, str]
VARS = frozenset({"self", "oldSelf"})
REASONS = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")
MAX_MESSAGE_EXPRESSION_BYTES = 5 * 1024


# -- values as CEL sees them through the schema -------------------------------------
def typed(v: Any, s: Any) -> Any:
    """JSON value -> CEL value, as the schema types it (numbers are doubles,
    date-time strings timestamps, duration strings durations, byte strings bytes)."""
    if not isinstance(s, dict):
        return cel.to_cel(v)
    if isinstance(v, dict):
        props = s.get("properties")
        extra = s.get("additionalProperties")
        out = {}
        for k, x in v.items():
            sub = props.get(k) if props else extra if isinstance(extra, dict) else None
            out[celtypes.StringType(k)] = typed(x, sub)
        return celtypes.MapType(out)
    if isinstance(v, list):
        items = s.get("items")
        return celtypes.ListType([typed(x, items) for x in v])
    t = s.get("type")
    if t == "number" and isinstance(v, int) and not isinstance(v, bool):
        return celtypes.DoubleType(v)
    if t == "string" and isinstance(v, str):
        fmt = s.get("format")
        try:
            if fmt == "date-time":
                return celtypes.TimestampType(v)
            if fmt == "duration":
                return celtypes.DurationType(v)
            if fmt == "byte":
                return celtypes.BytesType(base64.b64decode(v))
        except (ValueError, TypeError):
            pass
    return cel.to_cel(v)


# -- paths ----------------------------------------------------------------------------
def child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def field_path(path: str, schema: Obj) -> tuple[str, Obj]:
    """A rule's fieldPath (`.a.b`, `['x.y']`) -> (field.Path text, its schema);
    ValueError when it is not a path to a field of the schema."""
    out = ""
    s: Any = schema
    i, n = 0, len(path)
    while i < n:
        c = path[i]
        if c == ".":
            j = i + 1
            while j < n and path[j] not in ".[]":
                j += 1
            name = path[i + 1:j]
            if not name:
                raise ValueError("unexpected end of JSON path")
            i = j
        elif c == "[":
            if not path.startswith("['", i):
                raise ValueError(f"expected single quoted string but got {path[i + 1:i + 2] or ']'}")
            j = i + 2
            while j < n and not (path[j] == "'" and path[j - 1] != "\\"):
                j += 1
            if not path.startswith("']", j):
                raise ValueError("unexpected end of JSON path")
            name = path[i + 2:j].replace("\\'", "'").replace("\\\\", "\\")
            i = j + 2
        else:
            raise ValueError(f"expected [ or . but got: {path[i:].split('.')[0]}")
        if not isinstance(s, dict):
            raise ValueError("does not refer to a valid field")  # noqa: TRY004 - a bad path, not a bad type
        if s.get("properties") is not None:
            s = s["properties"].get(name)
            if s is None:
                raise ValueError("does not refer to a valid field")
            out = child(out, name)
        elif isinstance(s.get("additionalProperties"), dict):
            s = s["additionalProperties"]
            out = f"{out}[{name}]"
        else:
            raise ValueError("does not refer to a valid field")
    return out, s


# -- compiled rules ------------------------------------------------------------------
class Rule:
    __slots__ = (
        "field_path",
        "message",
        "message_program",
        "optional_old",
        "program",
        "reason",
        "src",
        "uses_old",
    )

    def __init__(self, raw: Obj, schema: Obj) -> None:
        self.src = str(raw.get("rule") or "")
        self.message = str(raw.get("message") or "")
        self.program = cel.compile(self.src, VARS)
        mx = raw.get("messageExpression")
        try:
            self.message_program = cel.compile(str(mx), VARS) if mx else None
        except cel.Unsupported:
            self.message_program = None  # the message or the default one is used
        self.uses_old = self.program.uses("oldSelf")
        self.optional_old = bool(raw.get("optionalOldSelf"))
        self.field_path = field_path(str(raw["fieldPath"]), schema)[0] if raw.get("fieldPath") else ""
        self.reason = raw.get("reason")

    def error_string(self) -> str:
        return self.message.strip() if self.message else self.src.strip()

    def default_message(self) -> str:
        return self.message.strip() if self.message else f"failed rule: {self.src.strip()}"


def _cause(path: str, stype: str, detail: str, reason: Any) -> Cause:
    field = path or "<nil>"
    if reason == "FieldValueForbidden":
        return errors.cause(field, f"Forbidden: {detail}", "FieldValueForbidden")
    if reason == "FieldValueRequired":
        return errors.cause(field, f"Required value: {detail}", "FieldValueRequired")
    if reason == "FieldValueDuplicate":
        return errors.cause(field, f"Duplicate value: {json.dumps(stype)}", "FieldValueDuplicate")
    return errors.cause(field, f"Invalid value: {json.dumps(stype)}: {detail}")


class Node:
    __slots__ = ("additional", "correlatable_map", "items", "map_keys", "props", "rules", "schema", "stype")

    def __init__(self, schema: Obj) -> None:
        self.schema = schema
        self.stype = str(schema.get("type") or "")
        self.rules: list[Rule] = []
        for r in schema.get("x-kubernetes-validations") or ():
            if not r.get("rule"):
                continue
            try:
                self.rules.append(Rule(r, schema))
            except cel.Unsupported as e:  # accepted with the CRD, not evaluated (docs/crds.md)
                log.warning("validation rule %r is not enforced: %s", r.get("rule"), e)
        self.props: dict[str, Node] = {}
        for k, sub in (schema.get("properties") or {}).items():
            if has_rules(sub):
                self.props[k] = Node(sub)
        extra = schema.get("additionalProperties")
        self.additional = Node(extra) if has_rules(extra) else None
        items = schema.get("items")
        self.items = Node(items) if has_rules(items) else None
        self.map_keys: tuple[str, ...] | None = tuple(schema.get("x-kubernetes-list-map-keys") or ()) \
            if schema.get("x-kubernetes-list-type") == "map" else None
        self.correlatable_map = schema.get("x-kubernetes-map-type") in (None, "granular", "atomic")

    def walk(self, path: str, v: Any, old: Any, out: list[Cause], warnings: list[str],
             same: bool = False) -> None:
        """`old`: the correlated old value (None: none); `same`: for a value without
        one, whether its nearest correlated ancestor is unchanged (ratcheting)."""
        if v is None:
            return
        if self.rules:
            self._run(path, v, old, out, warnings, same)
        if isinstance(v, dict):
            o = old if isinstance(old, dict) and self.correlatable_map else None
            if self.props:
                for k, sub in self.props.items():
                    if k in v:
                        sub.walk(child(path, k), v[k], o.get(k) if o else None, out, warnings)
            elif self.additional is not None:
                for k, x in v.items():
                    self.additional.walk(f"{path}[{k}]", x, o.get(k) if o else None, out, warnings)
        elif isinstance(v, list) and self.items is not None:
            olds: dict[tuple[Any, ...], Any] = {}
            if self.map_keys and isinstance(old, list):
                for e in old:
                    if isinstance(e, dict):
                        olds[tuple(json.dumps(e.get(k)) for k in self.map_keys)] = e
            here = (v == old) if old is not None else same
            for i, x in enumerate(v):
                ox = olds.get(tuple(json.dumps(x.get(k)) for k in self.map_keys)) \
                    if olds and isinstance(x, dict) and self.map_keys else None
                self.items.walk(f"{path}[{i}]", x, ox, out, warnings, here)

    def _run(self, path: str, v: Any, old: Any, out: list[Cause], warnings: list[str], same: bool) -> None:
        this = typed(v, self.schema)
        was = typed(old, self.schema) if old is not None else None
        unchanged: bool | None = None
        for r in self.rules:
            if r.optional_old:
                act = {"self": this, "oldSelf": cel.Optional(was, was is not None)}
            elif r.uses_old:
                if was is None:
                    continue
                act = {"self": this, "oldSelf": was}
            else:
                act = {"self": this} if was is None else {"self": this, "oldSelf": was}
            try:
                ok = r.program.run(act)
            except cel.EvalError as e:
                out.append(_cause(path, self.stype, f"{e} evaluating rule: {r.error_string()}", None))
                continue
            if cel.is_true(ok):
                continue
            if not isinstance(ok, (bool, celtypes.BoolType)):
                out.append(_cause(path, self.stype, f"no such overload evaluating rule: {r.error_string()}", None))
                continue
            where = path
            if r.field_path:
                where = f"{path}{r.field_path}" if r.field_path.startswith("[") else child(path, r.field_path)
            detail = self._message(r, act)
            c = _cause(where, self.stype, detail, r.reason)
            if not r.uses_old and (old is not None or same):
                if unchanged is None:
                    unchanged = same if old is None else v == old
                if unchanged:  # ratcheting: an unchanged value that already failed only warns
                    warnings.append(f"{c['field']}: {c['message']}")
                    continue
            out.append(c)

    @staticmethod
    def _message(r: Rule, act: dict[str, Any]) -> str:
        if r.message_program is not None:
            try:
                m = r.message_program.run(act)
            except cel.EvalError:
                m = None
            if isinstance(m, str):
                m = str(m).strip()
                if m and "\n" not in m and len(m) <= MAX_MESSAGE_EXPRESSION_BYTES:
                    return m
        return r.default_message()


class Validator:
    def __init__(self, root: Node) -> None:
        self.root = root

    @classmethod
    def build(cls, schema: Any) -> Validator | None:
        """The compiled rules of one schema; None when it has none (or they do
        not compile: the CRD's validation refuses those)."""
        if not has_rules(schema):
            return None
        try:
            return cls(Node(schema))
        except (cel.CompileError, ValueError, KeyError):
            return None

    def validate(self, obj: Obj, old: Obj | None, warnings: list[str]) -> list[Cause]:
        out: list[Cause] = []
        self.root.walk("", obj, old, out, warnings)
        return out


# -- the CRD's validation of its rules -------------------------------------------------
_ROOT_META = {"type": "object", "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}}}


def undefined_field(prog: cel.Program, schema: Obj, *, root: bool) -> None:
    """The part of cel-go's type check that catches most mistakes: a field
    selection from `self`/`oldSelf` that the schema does not declare (at the
    root, and in embedded resources, apiVersion, kind, metadata.name and
    metadata.generateName are declared; no other metadata). Values the schema
    leaves open (maps, preserve-unknown-fields, int-or-string) are not checked."""
    for names in prog.selections():
        if names[0][0] not in ("self", "oldSelf"):
            continue
        s: Any = schema
        top = root
        for name, col in names[1:]:
            if not isinstance(s, dict):
                break
            props = s.get("properties")
            if top or s.get("x-kubernetes-embedded-resource"):
                if name in ("apiVersion", "kind"):
                    s = {"type": "string"}
                    top = False
                    continue
                if name == "metadata":
                    s, top = _ROOT_META, False
                    continue
            top = False
            if props:
                if name not in props:
                    raise cel.CompileError(f"ERROR: <input>:1:{col}: undefined field '{name}'{prog.caret(col)}")
                s = props[name]
            elif isinstance(s.get("additionalProperties"), dict):
                s = s["additionalProperties"]
            else:
                break

def _go_rule(r: Obj) -> str:
    """A ValidationRule as field.Invalid prints it (Go's %#v)."""
    reason = r.get("reason")
    oos = r.get("optionalOldSelf")
    return ("apiextensions.ValidationRule{Rule:" + json.dumps(str(r.get("rule") or "")) +
            ", Message:" + json.dumps(str(r.get("message") or "")) +
            ", MessageExpression:" + json.dumps(str(r.get("messageExpression") or "")) +
            ", Reason:" + ("(*apiextensions.FieldValueErrorReason)(nil)" if reason is None
                           else "(*apiextensions.FieldValueErrorReason)(0x0)") +
            ", FieldPath:" + json.dumps(str(r.get("fieldPath") or "")) +
            ", OptionalOldSelf:" + ("(*bool)(nil)" if oos is None else "(*bool)(0x0)") + "}")


def crd_causes(schema: Any, path: str) -> list[Cause]:
    """What is wrong with a schema's validation rules (empty when it has none)."""
    if not has_rules(schema):
        return []
    out: list[Cause] = []
    _check(schema, path, out, correlatable=True)
    return out


def _check(s: Any, path: str, out: list[Cause], correlatable: bool) -> None:
    if not isinstance(s, dict):
        return
    rules = s.get("x-kubernetes-validations")
    if isinstance(rules, list):
        for i, r in enumerate(rules):
            if isinstance(r, dict):
                _check_rule(r, s, f"{path}.x-kubernetes-validations[{i}]", path, out, correlatable)
    for k, sub in (s.get("properties") or {}).items():
        _check(sub, f"{path}.properties[{k}]", out, correlatable)
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        _check(extra, f"{path}.additionalProperties", out,
               correlatable and s.get("x-kubernetes-map-type") in (None, "granular", "atomic"))
    items = s.get("items")
    if isinstance(items, dict):
        _check(items, f"{path}.items", out, correlatable and s.get("x-kubernetes-list-type") == "map")


def _check_rule(r: Obj, s: Obj, p: str, node_path: str, out: list[Cause], correlatable: bool) -> None:
    src = r.get("rule")
    if not src:
        out.append(errors.required(f"{p}.rule"))
        return
    msg = r.get("message")
    if isinstance(msg, str) and msg and not msg.strip():
        out.append(errors.cause(f"{p}.message", f"Invalid value: {json.dumps(msg)}: message must be non-empty "
                                "if specified"))
    if isinstance(msg, str) and "\n" in msg:
        out.append(errors.cause(f"{p}.message", f"Invalid value: {json.dumps(msg)}: message must not contain "
                                "line breaks"))
    if "\n" in str(src) and not msg:
        out.append(errors.cause(f"{p}.message", "Required value: message must be specified if rule contains "
                                "line breaks", "FieldValueRequired"))
    reason = r.get("reason")
    if reason is not None and reason not in REASONS:
        out.append(errors.cause(f"{p}.reason", f"Unsupported value: {json.dumps(reason)}: supported values: "
                                + ", ".join(json.dumps(x) for x in REASONS), "FieldValueNotSupported"))
    fp = r.get("fieldPath")
    if fp:
        try:
            field_path(str(fp), s)
        except ValueError as e:
            out.append(errors.cause(f"{p}.fieldPath", f"Invalid value: {json.dumps(fp)}: fieldPath must be a "
                                    f"valid path: {e}"))
    try:
        prog = cel.compile(str(src), VARS)
        undefined_field(prog, s, root=node_path.endswith("openAPIV3Schema"))
    except cel.Unsupported:
        return  # accepted, not evaluated (docs/crds.md)
    except cel.CompileError as e:
        out.append(errors.cause(f"{p}.rule", f"Invalid value: {_go_rule(r)}: compilation failed: {e}"))
        return
    mx = r.get("messageExpression")
    if mx:
        try:
            undefined_field(cel.compile(str(mx), VARS), s, root=node_path.endswith("openAPIV3Schema"))
        except cel.Unsupported:
            pass
        except cel.CompileError as e:
            out.append(errors.cause(f"{p}.messageExpression", f"Invalid value: {_go_rule(r)}: messageExpression "
                                    f"compilation failed: {e}"))
    if prog.uses("oldSelf") and not correlatable:
        out.append(errors.cause(f"{p}.rule", f"Invalid value: {_go_rule(r)}: oldSelf cannot be used on the "
                                f"uncorrelatable portion of the schema within {node_path}"))
    if r.get("optionalOldSelf") and not prog.uses("oldSelf"):
        out.append(errors.cause(f"{p}.optionalOldSelf", "Forbidden: may not be set if rule does not use oldSelf",
                                "FieldValueForbidden"))
