"""`kubectl get` columns of custom resources: a CRD version's
additionalPrinterColumns evaluated with the JSONPath subset CRDs use, cells
typed as apiextensions-apiserver's table convertor types them (dates become
ages, missing values `<none>`). Without columns a CR shows NAME and AGE.
"""

from __future__ import annotations

import re
from typing import Any

from kybern.api import tables

Obj = dict[str, Any]
_TOKEN = re.compile(r"""\.\.?([A-Za-z0-9_\-$]+|\*)|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]|\[\s*(-?\d+)\s*\]"""
                    r"""|\[\s*\*\s*\]|\[\s*\?\(\s*@((?:\.[A-Za-z0-9_\-]+)+)\s*(==|!=)\s*(?:'([^']*)'|"([^"]*)"|"""
                    r"""(-?\d+(?:\.\d+)?)|(true|false))\s*\)\s*\]""")


def parse(path: str) -> list[tuple[str, Any]] | None:
    """`.status.conditions[?(@.type=="Ready")].status` → steps; None if unsupported."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    path = path.removeprefix("$")
    steps: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            return None
        tok = m.group(0)
        if tok.startswith(".."):
            return None  # recursive descent is not allowed in CRD columns either
        if m.group(1) is not None:
            steps.append(("all", None) if m.group(1) == "*" else ("key", m.group(1)))
        elif m.group(2) is not None or m.group(3) is not None:
            steps.append(("key", m.group(2) if m.group(2) is not None else m.group(3)))
        elif m.group(4) is not None:
            steps.append(("index", int(m.group(4))))
        elif tok.replace(" ", "") == "[*]":
            steps.append(("all", None))
        else:
            fields = m.group(5).strip(".").split(".")
            if m.group(7) is not None or m.group(8) is not None:
                want: Any = m.group(7) if m.group(7) is not None else m.group(8)
            elif m.group(9) is not None:
                want = float(m.group(9)) if "." in m.group(9) else int(m.group(9))
            else:
                want = m.group(10) == "true"
            steps.append(("filter", (fields, m.group(6), want)))
        pos = m.end()
    return steps


def find(obj: Any, steps: list[tuple[str, Any]]) -> list[Any]:
    values = [obj]
    for kind, arg in steps:
        nxt: list[Any] = []
        for v in values:
            if kind == "key" and isinstance(v, dict) and arg in v or kind == "index" and isinstance(v, list) and -len(v) <= arg < len(v):
                nxt.append(v[arg])
            elif kind == "all":
                nxt.extend(v if isinstance(v, list) else v.values() if isinstance(v, dict) else [])
            elif kind == "filter" and isinstance(v, list):
                fields, op, want = arg
                for item in v:
                    got: Any = item
                    for f in fields:
                        got = got.get(f) if isinstance(got, dict) else None
                    if (got == want) == (op == "=="):
                        nxt.append(item)
        values = nxt
    return values


def _cell(typ: str, value: Any) -> Any:
    if value is None:
        return None
    if typ == "integer":
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if typ == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if typ == "boolean":
        return value if isinstance(value, bool) else None
    if typ == "date":
        return tables.age(value) if isinstance(value, str) else None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        import orjson

        return orjson.dumps(value).decode()
    return str(value)


_AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def printer(columns: list[Obj] | None) -> tables.Printer:
    """A tables.Printer for a CRD version's additionalPrinterColumns."""
    cols = list(columns or []) or [_AGE_COLUMN]
    parsed = [parse(str(c.get("jsonPath", ""))) for c in cols]
    defs: list[tables.Column] = [("Name", "string", "name", 0)]
    for c in cols:
        # date cells arrive as ages, so kubectl is told "string" like upstream's convertor does for Age
        defs.append((str(c.get("name", "")), "string" if c.get("type") == "date" else str(c.get("type")),
                     str(c.get("format", "")), int(c.get("priority", 0) or 0)))

    def row(o: Obj) -> list[Any]:
        cells: list[Any] = [(o.get("metadata") or {}).get("name", "")]
        for c, steps in zip(cols, parsed):
            found = find(o, steps) if steps is not None else []
            cells.append(_cell(str(c.get("type")), found[0]) if found else None)
        return cells

    return defs, row
