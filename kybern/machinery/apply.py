"""Server-side apply: merge an applied configuration into the live object, as
structured-merge-diff's merge.Updater.Apply and k8s' fieldmanager do.

1. merge: the config's fields overwrite the live ones; granular maps merge key
   by key, associative lists (`x-kubernetes-list-type: map`) item by item on
   their keys, sets union, atomic lists and maps are replaced whole;
2. the applier now owns exactly the fields of its config;
3. prune: fields the applier applied last time but omits now are removed,
   unless another manager (applier or updater) owns them;
4. conflicts: a field the result changes that another manager owns is a 409
   Conflict naming each manager and field, unless `force`, which moves the
   field to the applier. Equal values are shared, not conflicts.

The `kubectl` manager gets upstream's client-side-apply upgrade path: conflicts
with fields whose live value still matches the last-applied annotation are
allowed, and that annotation follows the applied config.
"""

from __future__ import annotations

from typing import Any

import orjson

from kybern.machinery import errors, meta
from kybern.machinery import fieldpath as fp
from kybern.machinery.managedfields import (
    STRIP,
    Entry,
    Managers,
    reset_fields,
    without_managed_fields,
)

Obj = dict[str, Any]
MISSING = fp.MISSING
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
UPGRADING_MANAGER = "kubectl"  # only kubectl's own manager upgrades from client-side apply


# -- merge ---------------------------------------------------------------------------
def merge(lhs: Any, rhs: Any, schema: fp.Schema) -> Any:
    """`rhs` merged onto `lhs` (typed.Merge with the config on the right)."""
    if rhs is MISSING:
        return lhs
    if lhs is MISSING or lhs is None:
        return rhs
    t = fp.type_of(schema)
    if fp.is_leaf(t, lhs) or fp.is_leaf(t, rhs) or type(lhs) is not type(rhs):
        return rhs
    if isinstance(rhs, dict):
        eff = t if t.kind == "map" else fp.DEDUCED
        out = dict(lhs)
        for k, v in rhs.items():
            _, sch = fp.child_schema(eff, k)
            out[k] = merge(lhs.get(k, MISSING), v, sch)
        return out
    return _merge_list(t, lhs, rhs)


def _merge_list(t: fp.TypeInfo, lhs: list[Any], rhs: list[Any]) -> list[Any]:
    """Items merged by path element. Order (mergingWalker.visitListItems): the
    config's order for shared items, live-only items where they were, new
    items where the config puts them."""
    lpes = [fp.item_pe(t, v, i) for i, v in enumerate(lhs)]
    rpes = [fp.item_pe(t, v, i) for i, v in enumerate(rhs)]
    lmap: dict[str, Any] = {}
    rmap: dict[str, Any] = {}
    for pe, v in zip(lpes, lhs):
        lmap.setdefault(pe, v)
    for pe, v in zip(rpes, rhs):
        rmap.setdefault(pe, v)
    shared = [pe for pe in rpes if pe in lmap]
    nxt = 0  # index into shared
    out: list[Any] = []
    done: set[str] = set()
    li = ri = 0
    while li < len(lpes) or ri < len(rpes):
        if li < len(lpes) and ri < len(rpes):
            pe = lpes[li]
            if pe == rpes[ri]:
                if pe not in done:
                    out.append(merge(lmap[pe], rmap[pe], t.elem))
                    done.add(pe)
                li += 1
                ri += 1
                if nxt < len(shared) and shared[nxt] == pe:
                    nxt += 1
                continue
            if pe in rmap and nxt < len(shared) and shared[nxt] != pe:
                li += 1  # shared, but not the one due in this round
                continue
        if li < len(lpes):
            pe = lpes[li]
            if pe not in rmap:
                out.append(lhs[li])
                li += 1
                continue
            if pe in done:
                li += 1
                continue
        if ri < len(rpes):
            pe = rpes[ri]
            if pe not in done:
                out.append(merge(lmap.get(pe, MISSING), rmap[pe], t.elem))
                done.add(pe)
            ri += 1
            if nxt < len(shared) and shared[nxt] == pe:
                nxt += 1
    return out


def drop_nulls(value: Any) -> Any:
    """A null in an applied config means "not set" here (the Go decoder turns
    most of them into absent pointers before structured-merge-diff runs)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value if v is not None]
    return value


# -- conflicts ------------------------------------------------------------------------
def conflict_error(conflicts: list[tuple[Entry, tuple[str, ...]]]) -> errors.StatusError:
    """409 Conflict with one FieldManagerConflict cause per field (NewConflictError)."""
    causes = [{"type": "FieldManagerConflict", "message": f"conflict with {e.describe()}",
               "field": fp.path_string(p)} for e, p in conflicts]
    if len(conflicts) == 1:
        e, p = conflicts[0]
        msg = f"Apply failed with 1 conflict: conflict with {e.describe()}: {fp.path_string(p)}"
    else:
        lines: list[str] = []
        by_manager: dict[str, list[str]] = {}
        for e, p in conflicts:
            by_manager.setdefault(e.describe(), []).append(fp.path_string(p))
        for name in sorted(by_manager, key=lambda d: d.split('"')[1]):
            lines.append(f"conflicts with {name}:")
            lines.extend(f"- {p}" for p in by_manager[name])
        msg = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return errors.StatusError(409, "Conflict", msg, details={"causes": causes})


def _allowed_by_last_applied(live: Obj, schema: fp.Schema) -> fp.Set | None:
    """Fields the client-side-apply annotation still describes truthfully
    (lastAppliedManager.allowedConflictsFromLastApplied)."""
    raw = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not raw:
        return None
    try:
        last = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(last, dict):
        return None
    added, modified, removed = fp.compare(last, live, schema)
    out = fp.to_set(last, schema)
    for s in (modified, added, removed):
        out = fp.difference(out, s)
    return out


def _sync_last_applied(obj: Obj, config: Obj) -> None:
    """kubectl's server-side apply keeps an existing last-applied annotation in
    step with what it applies (lastAppliedUpdater)."""
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    if LAST_APPLIED not in ann:
        return
    cfg = {**config, "metadata": dict(config.get("metadata") or {})}
    cfg_ann = {k: v for k, v in (cfg["metadata"].get("annotations") or {}).items() if k != LAST_APPLIED}
    if "annotations" in cfg["metadata"]:
        cfg["metadata"]["annotations"] = cfg_ann
    value = orjson.dumps(cfg, option=orjson.OPT_SORT_KEYS).decode() + "\n"
    obj["metadata"]["annotations"] = {**ann, LAST_APPLIED: value}


# -- apply ----------------------------------------------------------------------------------
def apply(live: Obj | None, config: Obj, managers: Managers, *, manager: str, force: bool,
          api_version: str, schema: fp.Schema, has_status: bool = False,
          subresource: str = "") -> tuple[Obj, Managers]:
    """Apply `config` for `manager` onto `live` (None: the object is created).
    Returns the new object (without managedFields) and the new entries; raises
    a 409 Conflict Status when other managers own fields it would change."""
    if (config.get("metadata") or {}).get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    config = drop_nulls(config)
    base = without_managed_fields(live) if live is not None else {}
    ignored = reset_fields(has_status, subresource)
    merged = merge(base, config, schema)

    key = (manager, "Apply", "", subresource)
    previous = managers.get(key)
    applied = fp.recursive_difference(fp.to_set(config, schema), ignored)
    others = {k: e for k, e in managers.items() if k != key}
    if previous is not None and previous.fields:
        owned: fp.Set = applied
        for e in others.values():
            owned = fp.union(owned, e.fields)
        gone = fp.difference(fp.ensure_named(previous.fields, schema), fp.ensure_named(owned, schema))
        if gone:
            pruned = fp.remove_items(merged, gone, schema)
            merged = pruned if pruned is not MISSING else {}

    added, modified, removed = fp.compare(base, merged, schema)
    changed = fp.recursive_difference(fp.union(added, modified), ignored)
    removed = fp.recursive_difference(removed, ignored)
    conflicts = {k: fp.intersection(e.fields, changed) for k, e in others.items()}
    conflicts = {k: s for k, s in conflicts.items() if s}
    if conflicts and not force:
        allowed = _allowed_by_last_applied(base, schema) if manager == UPGRADING_MANAGER and live else None
        if allowed is not None:
            conflicts = {k: fp.difference(s, allowed) for k, s in conflicts.items()}
            conflicts = {k: s for k, s in conflicts.items() if s}
        if conflicts:
            raise conflict_error([(others[k], p) for k in sorted(conflicts, key=lambda k: k[0])
                                  for p in fp.iterate(conflicts[k])])
    out: Managers = {}
    for k, e in others.items():
        fields = fp.difference(e.fields, changed)  # taken over (forced, or sharing nothing)
        fields = fp.difference(fields, removed) if removed else fields
        if fields:
            out[k] = Entry(e.manager, e.operation, e.api_version, e.time, fields, e.subresource, stored=e.stored)
    mine = fp.difference(applied, STRIP)
    if mine:
        noop = live is not None and merged == base
        when = previous.time if (noop and previous is not None and previous.time) else meta.now()
        out[key] = Entry(manager, "Apply", api_version, when, mine, subresource)
    if manager == UPGRADING_MANAGER and live is not None:
        _sync_last_applied(merged, config)
    return merged, out
