"""Empty `omitempty` lists and maps of built-in kinds, dropped as kube-apiserver's
round trip through the Go types drops them: a ValidatingWebhookConfiguration
created with `webhooks: []` reads back without `webhooks`, a container's `env: []`
or a pod's `nodeSelector: {}` likewise, while a field without omitempty keeps its
`[]` (a Role's `rules`, a node image's `names`).

Which fields are omitempty comes from kubectl's own struct tags
(tools/extract_omitempty.py -> data/omitempty.json); the OpenAPI definitions say
which type each property holds, so a body is walked along its kind's definition.
Custom resources are not walked: upstream keeps them as they were sent
(unstructured), only their metadata is ObjectMeta (the store's _OMITEMPTY_META).
Wrong types are left for validation to refuse; only a `[]` in a list field or a
`{}` in a map field is dropped.
"""

from __future__ import annotations

import json
import threading
from importlib import resources
from typing import Any

from kybern.api import schemas

_OBJ, _LIST, _MAP = 0, 1, 2


class _Plan:
    """One definition: its omitempty fields, and the properties worth descending
    into (those whose type holds omitempty fields somewhere below)."""

    __slots__ = ("children", "omit")

    def __init__(self, omit: dict[str, type]) -> None:
        self.omit = omit  # field -> list or dict, the JSON type of its Go slice or map
        self.children: dict[str, tuple[int, _Plan]] = {}


_lock = threading.Lock()
_table: dict[str, frozenset[str]] | None = None
_plans: dict[str, _Plan | None] = {}


def _load() -> dict[str, frozenset[str]]:
    global _table
    if _table is None:
        raw = json.loads(resources.files("kybern.api").joinpath("data/omitempty.json").read_text())
        _table = {k: frozenset(v) for k, v in raw.items()}
    return _table


def _child(schema: dict[str, Any]) -> tuple[int, str] | None:
    """How a property holds a definition: as itself, a list of it or a map of it."""
    name = schemas.ref_name(schema)
    if name:
        return _OBJ, name
    for key, how in (("items", _LIST), ("additionalProperties", _MAP)):
        sub = schema.get(key)
        if isinstance(sub, dict) and schemas.ref_name(sub):
            return how, schemas.ref_name(sub)  # type: ignore[return-value]
    return None


def _build(name: str, building: dict[str, _Plan], done: dict[str, _Plan | None]) -> _Plan | None:
    """The plan of definition `name`, or None when nothing below it is omitempty.
    `building` holds the plans under construction (a recursive type refers to its
    own, unfinished), `done` those finished in this build."""
    if name in done:
        return done[name]
    if name in building:
        return building[name]
    defn = schemas.definition(name)
    if not defn:
        return None
    props = defn.get("properties") or {}
    plan = _Plan({f: list if props[f].get("type") == "array" else dict
                  for f in _load().get(name, ()) if isinstance(props.get(f), dict)
                  and props[f].get("type") in ("array", "object")})
    building[name] = plan
    for prop, schema in props.items():
        how_ref = _child(schema) if isinstance(schema, dict) else None
        if how_ref is not None:
            sub = _build(how_ref[1], building, done)
            if sub is not None:
                plan.children[prop] = (how_ref[0], sub)
    del building[name]
    done[name] = result = plan if plan.omit or plan.children else None
    return result


def plan_for(definition: str) -> _Plan | None:
    """The compiled plan of a built-in kind's definition (None: nothing to drop)."""
    try:
        return _plans[definition]
    except KeyError:
        pass
    with _lock:
        # custom resources' definitions (registered from their CRDs) are not Kubernetes' own
        plan = _build(definition, {}, {}) if definition.startswith("io.k8s.") else None
        _plans[definition] = plan
        return plan


def _walk(obj: dict[str, Any], plan: _Plan, skip: str | None = None) -> None:
    dead = None
    omit, children = plan.omit, plan.children
    for k, v in obj.items():
        if k == skip:
            continue
        if not v and k in omit and type(v) is omit[k]:
            if dead is None:
                dead = [k]
            else:
                dead.append(k)
            continue
        c = children.get(k)
        if c is None or not v:
            continue
        how, sub = c
        if how == _OBJ:
            if type(v) is dict:
                _walk(v, sub)
        elif how == _LIST:
            if type(v) is list:
                for x in v:
                    if type(x) is dict:
                        _walk(x, sub)
        elif type(v) is dict:
            for x in v.values():
                if type(x) is dict:
                    _walk(x, sub)
    if dead:
        for k in dead:
            del obj[k]


def drop_empty(definition: str, obj: dict[str, Any]) -> None:
    """Drop, in place, the empty omitempty lists and maps of `obj`, an object of the
    built-in kind `definition`, at any depth; its top-level metadata is left to the
    store (managedFields keeps its own rules there)."""
    plan = plan_for(definition)
    if plan is not None:
        _walk(obj, plan, "metadata")
