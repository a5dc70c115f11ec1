"""Label and field selectors: parsing the string forms clients send
(`app=web,tier!=db,env in (a,b),!legacy`) and the LabelSelector objects in specs.

Parse errors are BadRequest Status errors with upstream's wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from kybern.machinery import errors

Requirement = tuple[str, str, tuple[str, ...]]  # (key, op, values); op in = != in notin exists !exists gt lt
Matcher = Callable[[dict[str, str]], bool]

# the lexer of apimachinery's labels.Parse
_SPECIAL = set("=!(),><")
_WHITESPACE = set(" \t\r\n")
_TOKENS = {")": "CLOSE", ",": "COMMA", "!": "NOT", "==": "EQ2", "=": "EQ", ">": "GT", "in": "IN", "<": "LT",
           "!=": "NE", "notin": "NOTIN", "(": "OPEN"}
_OPERATORS = {"IN": "in", "NOTIN": "notin", "EQ": "=", "EQ2": "=", "NE": "!=", "GT": "gt", "LT": "lt"}
_BINARY = "in, notin, =, ==, !=, gt, lt"
_QUALIFIED = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
              "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
              "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _lex(s: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, n = 0, len(s)
    while True:
        while pos < n and s[pos] in _WHITESPACE:
            pos += 1
        if pos >= n:
            out.append(("END", ""))
            return out
        if s[pos] in _SPECIAL:  # the longest operator the symbols spell (scanSpecialSymbol)
            buf, last = "", None
            while pos < n and s[pos] in _SPECIAL:
                buf += s[pos]
                if buf in _TOKENS:
                    last = (_TOKENS[buf], buf)
                elif last is not None:
                    break
                pos += 1
            out.append(last if last is not None else ("ERROR", f"error expected: keyword found '{buf}'"))
        else:
            start = pos
            while pos < n and s[pos] not in _SPECIAL and s[pos] not in _WHITESPACE:
                pos += 1
            word = s[start:pos]
            out.append((_TOKENS[word], word) if word in ("in", "notin") else ("ID", word))


def _label_key_errors(key: str) -> list[str]:
    """IsQualifiedName, as validateLabelKey reports it."""
    from kybern.api.strategy import qualified_name_errors  # the API layer owns the messages

    return qualified_name_errors(key)


def _label_value_errors(value: str) -> list[str]:
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        out.append("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                   "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
                   "'my_value',  or '12345', regex used for validation is "
                   "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    return out


def _go_strings(values: Sequence[str]) -> str:
    return "[]string{" + ", ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def parse_label_selector(s: str | None) -> list[Requirement]:
    """apimachinery's labels.Parse (its lexer and recursive descent), with its error
    texts: `unable to parse requirement: found '', expected: ',' or ')'`."""
    if not s or not s.strip():
        return []
    toks = _lex(s)
    pos = 0

    def look(values: bool = True) -> tuple[str, str]:
        tok, lit = toks[pos]
        return ("ID", lit) if values and tok in ("IN", "NOTIN") else (tok, lit)

    def take(values: bool = True) -> tuple[str, str]:
        nonlocal pos
        got = look(values)
        pos += 1
        return got

    def requirement() -> Requirement:
        tok, key = take()
        op = ""
        if tok == "NOT":
            op = "!exists"
            tok, key = take()
        if tok != "ID":
            raise ValueError(f"found '{key}', expected: identifier")
        errs = _label_key_errors(key)
        if errs:
            raise ValueError(f'<nil>: Invalid value: "{key}": ' + "; ".join(errs))
        if op or look()[0] in ("END", "COMMA"):  # what follows `!key` is parse()'s to judge
            return (key, op or "exists", ())
        tok, lit = take(values=False)
        if tok not in _OPERATORS:
            raise ValueError(f"found '{lit}', expected: {_BINARY}")
        op = _OPERATORS[tok]
        vals: set[str] = set()
        if op in ("in", "notin"):
            tok, lit = take()
            if tok != "OPEN":
                raise ValueError(f"found '{lit}' expected: '('")
            tok, lit = look()
            if tok in ("ID", "COMMA"):
                while True:  # parseIdentifiersList
                    t, item = take()
                    if t == "ID":
                        vals.add(item)
                        t2, lit2 = look()
                        if t2 == "COMMA":
                            continue
                        if t2 == "CLOSE":
                            break
                        raise ValueError(f"found '{lit2}', expected: ',' or ')'")
                    elif t == "COMMA":
                        if not vals:
                            vals.add("")
                        t2 = look()[0]
                        if t2 == "CLOSE":
                            vals.add("")
                            break
                        if t2 == "COMMA":
                            vals.add("")
                    else:
                        raise ValueError(f"found '{item}', expected: ',', or identifier")
                if take()[0] != "CLOSE":
                    raise ValueError(f"found '{lit}', expected: ')'")
            elif tok == "CLOSE":
                take()
                vals.add("")
            else:
                raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")
        else:  # parseExactValue
            tok, lit = look()
            if tok in ("END", "COMMA"):
                vals.add("")
            else:
                tok, lit = take()
                if tok != "ID":
                    raise ValueError(f"found '{lit}', expected: identifier")
                vals.add(lit)
        values = sorted(vals)
        problems = []  # NewRequirement
        if op in ("gt", "lt"):
            for i, v in enumerate(values):
                if not re.fullmatch(r"[+-]?[0-9]+", v):
                    problems.append(f'values[{i}]: Invalid value: "{v}": for \'Gt\', \'Lt\' operators, the '
                                    "value must be an integer")
        for i, v in enumerate(values):
            errs = _label_value_errors(v)
            if errs:
                problems.append(f'values[{i}][{key}]: Invalid value: "{v}": ' + "; ".join(errs))
        if problems:
            raise ValueError(problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]")
        return (key, op, tuple(values))

    reqs: list[Requirement] = []
    while True:
        tok, lit = look()
        if tok in ("ID", "NOT"):
            try:
                reqs.append(requirement())
            except ValueError as e:
                raise errors.bad_request(f"unable to parse requirement: {e}") from None
            t, lit = take()
            if t == "END":
                break
            if t == "COMMA":
                t2, lit2 = look()
                if t2 not in ("ID", "NOT"):
                    raise errors.bad_request(f"found '{lit2}', expected: identifier after ','")
                continue
            raise errors.bad_request(f"found '{lit}', expected: ',' or 'end of string'")
        if tok == "END":
            break
        raise errors.bad_request(f"found '{lit}', expected: !, identifier, or 'end of string'")
    return sorted(reqs, key=lambda r: r[0])


def matches(reqs: list[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, vals in reqs:
        present = key in labels
        v = labels.get(key)
        if op == "=":
            if not present or v != vals[0]:
                return False
        elif op == "!=":
            if present and v == vals[0]:
                return False
        elif op == "in":
            if not present or v not in vals:
                return False
        elif op == "notin":
            if present and v in vals:
                return False
        elif op == "exists":
            if not present:
                return False
        elif op == "!exists":
            if present:
                return False
        elif op in ("gt", "lt"):
            if not present or not re.fullmatch(r"[+-]?[0-9]+", v or "") or len(vals) != 1:
                return False
            if (int(v) <= int(vals[0])) if op == "gt" else (int(v) >= int(vals[0])):  # type: ignore[arg-type]
                return False
    return True


def from_label_selector_object(sel: dict[str, Any] | None) -> list[Requirement] | None:
    """A metav1.LabelSelector as requirements. An empty selector matches everything;
    None (absent) matches nothing, as upstream's LabelSelectorAsSelector."""
    if sel is None:
        return None
    reqs: list[Requirement] = [(k, "=", (v,)) for k, v in (sel.get("matchLabels") or {}).items()]
    opmap = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for e in sel.get("matchExpressions") or []:
        reqs.append((e["key"], opmap[e["operator"]], tuple(e.get("values") or ())))
    return reqs


def selector_matches(sel: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    reqs = from_label_selector_object(sel)
    return reqs is not None and matches(reqs, labels)


def to_string(sel: dict[str, Any]) -> str:
    """A LabelSelector as the string form (for status.selector and list calls)."""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, vals = e["operator"], ",".join(e.get("values") or [])
        parts.append({"In": f"{e['key']} in ({vals})", "NotIn": f"{e['key']} notin ({vals})",
                      "Exists": e["key"], "DoesNotExist": f"!{e['key']}"}[op])
    return ",".join(parts)


def parse_field_selector(s: str | None) -> list[tuple[str, str, str]]:
    """Field selectors support =, == and != on single fields, as upstream."""
    if not s or not s.strip():
        return []
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        if "!=" in part:
            k, v = part.split("!=", 1)
            out.append((k.strip(), "!=", v.strip()))
        elif "==" in part:
            k, v = part.split("==", 1)
            out.append((k.strip(), "=", v.strip()))
        elif "=" in part:
            k, v = part.split("=", 1)
            out.append((k.strip(), "=", v.strip()))
        else:
            raise errors.bad_request(f"invalid selector: '{s}'; can't understand '{part}'")
    return out


def _flag(section: str, name: str) -> Callable[[dict[str, Any]], str]:
    return lambda o: "true" if (o.get(section) or {}).get(name) else "false"


def _event_source(o: dict[str, Any]) -> str:
    return str((o.get("source") or {}).get("component") or o.get("reportingComponent") or "")


def _regarding(field: str) -> Callable[[dict[str, Any]], str]:
    # an events.k8s.io Event is stored (and cached) as a core one: `regarding` is `involvedObject`
    return lambda o: str((o.get("regarding") or o.get("involvedObject") or {}).get(field) or "")


# field selector labels whose value is not the JSON at their path (the kinds' ToSelectableFields,
# from Go structs: an absent bool is "false", an absent count "0"); no two kinds share one
_COMPUTED: dict[tuple[str, ...], Callable[[dict[str, Any]], str]] = {
    ("spec", "unschedulable"): _flag("spec", "unschedulable"),  # nodes
    ("spec", "hostNetwork"): _flag("spec", "hostNetwork"),  # pods
    ("status", "successful"): lambda o: str((o.get("status") or {}).get("succeeded") or 0),  # jobs
    ("source",): _event_source,  # events: source.component, else the reporting controller
    # events.k8s.io events, seen in either version's form
    ("reportingController",): lambda o: str(o.get("reportingController") or o.get("reportingComponent") or ""),
    **{("regarding", f): _regarding(f)
       for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
}


def field_value(obj: dict[str, Any], path: str) -> str:
    return field_value_at(obj, path.split("."))


def field_value_at(obj: dict[str, Any], parts: Sequence[str]) -> str:
    """The field at `parts` (a path split at its dots) as a field selector compares it."""
    computed = _COMPUTED.get(parts if isinstance(parts, tuple) else tuple(parts))
    if computed is not None:
        return computed(obj)
    cur: Any = obj
    for p in parts:
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(p)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)
