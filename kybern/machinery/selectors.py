"""Label and field selectors: parsing the string forms clients send
(`app=web,tier!=db,env in (a,b),!legacy`) and the LabelSelector objects in specs.

Parse errors are BadRequest Status errors with upstream's wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from kybern.machinery import errors

Requirement = tuple[str, str, tuple[str, ...]]  # (key, op, values); op in = != in notin exists !exists
Matcher = Callable[[dict[str, str]], bool]

_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|[^\s!=,()]+)")


def _tokens(s: str) -> list[str]:
    out: list[str] = []
    pos = 0
    s = s.strip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m:
            raise errors.bad_request(f"unable to parse requirement: {s!r}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(s) and s[pos].isspace():
            pos += 1
    return out


def parse_label_selector(s: str | None) -> list[Requirement]:
    if not s or not s.strip():
        return []
    toks = _tokens(s)
    reqs: list[Requirement] = []
    i = 0

    def bad(msg: str) -> errors.StatusError:
        return errors.bad_request(f"unable to parse requirement: {msg}")

    while i < len(toks):
        t = toks[i]
        if t == "!":
            if i + 1 >= len(toks):
                raise bad("missing key after '!'")
            reqs.append((toks[i + 1], "!exists", ()))
            i += 2
        else:
            key = t
            _check_key(key)
            i += 1
            if i >= len(toks) or toks[i] == ",":
                reqs.append((key, "exists", ()))
            elif toks[i] in ("=", "==", "!="):
                op = "!=" if toks[i] == "!=" else "="
                i += 1
                val = ""
                if i < len(toks) and toks[i] not in (",",):
                    val = toks[i]
                    i += 1
                reqs.append((key, op, (val,)))
            elif toks[i] in ("in", "notin"):
                op = toks[i]
                i += 1
                if i >= len(toks) or toks[i] != "(":
                    raise bad(f"found '{toks[i] if i < len(toks) else ''}', expected: '('")
                i += 1
                vals: list[str] = []
                while i < len(toks) and toks[i] != ")":
                    if toks[i] != ",":
                        vals.append(toks[i])
                    i += 1
                if i >= len(toks):
                    raise bad("found '', expected: ')'")
                i += 1
                reqs.append((key, op, tuple(vals)))
            else:
                raise bad(f"found '{toks[i]}', expected: in, notin, =, ==, !=, or end of string")
        if i < len(toks):
            if toks[i] != ",":
                raise bad(f"found '{toks[i]}', expected: ','")
            i += 1
    return reqs


_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def _check_key(key: str) -> None:
    if not _KEY.match(key):
        raise errors.bad_request(f"unable to parse requirement: invalid label key \"{key}\"")


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


def field_value(obj: dict[str, Any], path: str) -> str:
    return field_value_at(obj, path.split("."))


def field_value_at(obj: dict[str, Any], parts: Sequence[str]) -> str:
    """The field at `parts` (a path split at its dots) as a field selector compares it."""
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
