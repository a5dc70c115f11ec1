"""Field sets: which fields of an object a manager owns, in the FieldsV1 form of
sigs.k8s.io/structured-merge-diff (fieldpath/ and typed/ in one small module).

A *set* is kept exactly as FieldsV1 serialises it, a nested dict whose keys are
path elements:

    f:<name>            a struct field or a map key
    k:{"name":"nginx"}  an item of an associative list (keys sorted, as JSON)
    v:"foo"             an item of a set list (the value, as JSON)
    i:0                 an item of a list without keys (by index)

`s[pe] == {}` or `"." in s[pe]` means the path ending in `pe` is a member of the
set; other keys of `s[pe]` are its children. Sets are values: the functions
below never mutate their arguments.

The typed walkers (`to_set`, `compare`, `remove_items`, `ensure_named`) follow a
value alongside its OpenAPI schema: `x-kubernetes-list-type` (atomic, set, map
with `x-kubernetes-list-map-keys`; without it the patch strategy decides, as
kube-openapi's schemaconv does) and `x-kubernetes-map-type: atomic`. A value
with no schema is *deduced*: maps are granular, lists atomic.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from kybern.api import schemas

Set = dict[str, Any]
Schema = dict[str, Any] | None

MISSING: Any = object()  # "no value here", distinct from JSON null
_MEMBER = "."
# list-map keys that upstream's OpenAPI gives a default (SMD fills them in a key)
_KEY_DEFAULTS = {"protocol": "TCP"}


# -- sets ----------------------------------------------------------------------
def is_member(node: Set) -> bool:
    return not node or _MEMBER in node


def children(node: Set) -> Set:
    return {k: v for k, v in node.items() if k != _MEMBER} if _MEMBER in node else node


def _node(member: bool, kids: Set) -> Set | None:
    if member:
        return {_MEMBER: {}, **kids} if kids else {}
    return kids or None


def union(a: Set, b: Set) -> Set:
    if not a:
        return b
    if not b:
        return a
    out = dict(a)
    for pe, nb in b.items():
        na = a.get(pe)
        if na is None:
            out[pe] = nb
        elif pe != _MEMBER:
            out[pe] = _node(is_member(na) or is_member(nb), union(children(na), children(nb))) or {}
    return out


def difference(a: Set, b: Set) -> Set:
    """Members of `a` not in `b` (children compared path by path). Returns `a`
    itself when nothing is taken away, so callers can tell cheaply."""
    out: Set = {}
    changed = False
    for pe, na in a.items():
        nb = b.get(pe)
        if nb is None or pe == _MEMBER:
            out[pe] = na
            continue
        member = is_member(na)
        drop = member and is_member(nb)
        ka, kb = children(na), children(nb)
        kd = difference(ka, kb) if ka and kb else ka
        if not drop and kd is ka:
            out[pe] = na
            continue
        changed = True
        n = _node(member and not drop, kd)
        if n is not None:
            out[pe] = n
    return out if changed else a


def recursive_difference(a: Set, b: Set) -> Set:
    """`a` without the members of `b` and everything below them."""
    out: Set = {}
    for pe, na in a.items():
        if pe == _MEMBER:
            continue
        nb = b.get(pe)
        if nb is None:
            out[pe] = na
        elif not is_member(nb):
            n = _node(is_member(na), recursive_difference(children(na), children(nb)))
            if n is not None:
                out[pe] = n
    return out


def intersection(a: Set, b: Set) -> Set:
    out: Set = {}
    for pe, na in a.items():
        nb = b.get(pe)
        if nb is None or pe == _MEMBER:
            continue
        n = _node(is_member(na) and is_member(nb), intersection(children(na), children(nb)))
        if n is not None:
            out[pe] = n
    return out


def from_paths(*paths: tuple[str, ...]) -> Set:
    """A set with the given paths (tuples of path elements) as members."""
    out: Set = {}
    for p in paths:
        out = union(out, _path_set(p))
    return out


def _path_set(p: tuple[str, ...]) -> Set:
    node: Set = {}
    for pe in reversed(p):
        node = {pe: node}
    return node


def iterate(s: Set, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Member paths, members of a level before its children, levels sorted."""
    keys = sorted((k for k in s if k != _MEMBER), key=sort_key)
    for pe in keys:
        if is_member(s[pe]):
            yield prefix + (pe,)
    for pe in keys:
        kids = children(s[pe])
        if kids:
            yield from iterate(kids, prefix + (pe,))


def path_string(path: tuple[str, ...]) -> str:
    """`.spec.template.spec.containers[name="nginx"].image`, as fieldpath.Path.String()."""
    out = []
    for pe in path:
        kind, body = pe[0], pe[2:]
        if kind == "f":
            out.append("." + body)
        elif kind == "k":
            fields = orjson.loads(body)
            out.append("[" + ",".join(f"{k}={_to_string(v)}" for k, v in fields.items()) + "]")
        elif kind == "v":
            out.append("[=" + _to_string(orjson.loads(body)) + "]")
        else:
            out.append(f"[{body}]")
    return "".join(out)


def _to_string(v: Any) -> str:
    return orjson.dumps(v).decode() if not isinstance(v, bool) else ("true" if v else "false")


def _value_rank(v: Any) -> tuple[Any, ...]:
    # value.Compare's total order: numbers < strings < booleans < lists < maps < null
    if isinstance(v, bool):
        return (2, v)
    if isinstance(v, (int, float)):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    if isinstance(v, list):
        return (3, tuple(_value_rank(x) for x in v))
    if isinstance(v, dict):
        return (4, tuple((k, _value_rank(x)) for k, x in sorted(v.items())))
    return (5,)


def sort_key(pe: str) -> tuple[Any, ...]:
    """PathElement ordering: field names, then keys, values, indexes."""
    kind, body = pe[0], pe[2:]
    if kind == "f":
        return (0, body)
    if kind == "k":
        return (1, tuple((k, _value_rank(v)) for k, v in orjson.loads(body).items()))
    if kind == "v":
        return (2, _value_rank(orjson.loads(body)))
    if kind == "i":
        return (3, int(body))
    return (-1, pe)  # "."


def _ordered(keys: list[str]) -> list[str]:
    """Path elements in serialisation order, in place."""
    if len(keys) > 1:
        keys.sort()  # "." < "f:..." as plain strings; keys, values and indexes need parsing
        if keys[-1][0] in "kvi":
            keys.sort(key=sort_key)
    return keys


def canonical(s: Set, ref: Set | None = None) -> Set:
    """The same set with keys in upstream's serialisation order ("." first).
    Subtrees that are `ref`'s own (already in order, as read) are kept as they are."""
    if s is ref:
        return s
    keys = _ordered(list(s))
    if ref is None:
        return {pe: canonical(s[pe]) if s[pe] else {} for pe in keys}
    return {pe: canonical(s[pe], ref.get(pe)) if s[pe] else {} for pe in keys}


# -- path elements ---------------------------------------------------------------
def field_pe(name: str) -> str:
    return "f:" + name


def _json(v: Any) -> str:
    return orjson.dumps(v).decode()


# -- schema types -------------------------------------------------------------------
class TypeInfo:
    """What structured-merge-diff needs to know about one schema node."""

    __slots__ = ("atomic", "elem", "keys", "kids", "kind", "list_type", "props")

    def __init__(self, kind: str, atomic: bool = False, props: dict[str, Any] | None = None,
                 elem: Schema = None, keys: tuple[str, ...] = (), list_type: str = "atomic") -> None:
        self.kind = kind  # "map" | "list" | "scalar" | "deduced"
        self.atomic = atomic
        self.props = props  # struct fields (None: a plain map)
        self.elem = elem  # map values / list items
        self.keys = keys
        self.list_type = list_type  # "atomic" | "set" | "map"
        self.kids: dict[str, tuple[bool, Schema, TypeInfo]] = {}  # memo of child()


DEDUCED = TypeInfo("deduced")
_cache: dict[int, tuple[Any, TypeInfo]] = {}
schemas.on_change(_cache.clear)  # a CRD's schema replaced: classify afresh


def type_of(node: Schema) -> TypeInfo:
    if node is None:
        return DEDUCED
    hit = _cache.get(id(node))
    if hit is not None and hit[0] is node:
        return hit[1]
    info = _classify(node)
    _cache[id(node)] = (node, info)
    return info


def _classify(node: dict[str, Any]) -> TypeInfo:
    r = schemas.resolve(node)
    if r is None:
        return DEDUCED
    ext = {**{k: v for k, v in r.items() if k.startswith("x-")}, **{k: v for k, v in node.items()
                                                                    if k.startswith("x-")}}
    t = r.get("type")
    if t == "array":
        lt = ext.get("x-kubernetes-list-type")
        keys: tuple[str, ...] = tuple(ext.get("x-kubernetes-list-map-keys") or ())
        if lt is None and ext.get("x-kubernetes-patch-strategy", "").startswith("merge"):
            key = ext.get("x-kubernetes-patch-merge-key")
            lt, keys = ("map", (key,)) if key else ("set", ())
        lt = lt if lt in ("set", "map") else "atomic"
        return TypeInfo("list", atomic=lt == "atomic", elem=r.get("items"), keys=keys, list_type=lt)
    props = r.get("properties")
    extra = r.get("additionalProperties")
    if props is not None or t == "object":
        if props is None and not isinstance(extra, dict) and (extra is True or ext.get(
                "x-kubernetes-preserve-unknown-fields")):
            return TypeInfo("map", atomic=ext.get("x-kubernetes-map-type") == "atomic")
        if not isinstance(extra, dict) and ext.get("x-kubernetes-preserve-unknown-fields"):
            # upstream's schemaconv: a struct that preserves unknown fields gives them the
            # deduced element type, so they are tracked (owned, pruned by apply) as well
            extra = {}
        return TypeInfo("map", atomic=ext.get("x-kubernetes-map-type") == "atomic", props=props,
                        elem=extra if isinstance(extra, dict) else None)
    if t in ("string", "integer", "number", "boolean") or ext.get("x-kubernetes-int-or-string"):
        return TypeInfo("scalar")
    return DEDUCED


def child_schema(t: TypeInfo, name: str) -> tuple[bool, Schema]:
    """(known, schema) of map entry `name`. Unknown fields of a struct are
    ignored by the walkers, as the Go decoder drops them before SMD sees them."""
    if t.props is not None and name in t.props:
        return True, t.props[name]
    if t.elem is not None:
        return True, t.elem
    return t.props is None or t.kind == "deduced", None


def child(t: TypeInfo, name: str) -> tuple[bool, Schema, TypeInfo]:
    """child_schema() and its TypeInfo, memoised per type (the hot path of every walk)."""
    hit = t.kids.get(name)
    if hit is None:
        known, sch = child_schema(t if t.kind == "map" else DEDUCED, name)
        hit = t.kids[name] = (known, sch, type_of(sch))
    return hit


def item_pe(t: TypeInfo, item: Any, index: int) -> str:
    """The path element naming list item `item` (listItemToPathElement)."""
    if t.list_type == "map" and isinstance(item, dict):
        key = {}
        for k in sorted(t.keys):
            v = item.get(k, _KEY_DEFAULTS.get(k, MISSING))
            if v is not MISSING and v is not None:
                key[k] = v
        return "k:" + _json(key)
    if t.list_type == "set":
        return "v:" + _json(item)
    return f"i:{index}"


def is_leaf(t: TypeInfo, value: Any) -> bool:
    """Owned as a whole: scalars, atomic lists and maps, deduced lists and scalars."""
    if t.kind == "map":
        return t.atomic or not isinstance(value, dict)
    if t.kind == "list":
        return t.atomic or not isinstance(value, list)
    if t.kind == "deduced":
        return not isinstance(value, dict)
    return True


def _entries(t: TypeInfo, value: Any) -> Iterator[tuple[str, Any, Schema]]:
    """(path element, child value, child schema) of a granular map or list."""
    if isinstance(value, dict):
        eff = t if t.kind == "map" else DEDUCED
        for k, v in value.items():
            if v is None:
                continue
            known, sch = child_schema(eff, k)
            if known:
                yield "f:" + k, v, sch
    elif isinstance(value, list):
        seen = set()
        for i, v in enumerate(value):
            pe = item_pe(t, v, i)
            if pe not in seen:  # duplicates: the first one counts
                seen.add(pe)
                yield pe, v, t.elem


# -- typed walkers ---------------------------------------------------------------------
def to_set(value: Any, schema: Schema) -> Set:
    """The fields `value` sets (typed.ToFieldSet): leaves, and list items as members."""
    t = type_of(schema)
    out: Set = {}
    is_list = isinstance(value, list)
    for pe, v, sch in _entries(t, value):
        ct = type_of(sch)
        if is_leaf(ct, v):
            out[pe] = {}
            continue
        sub = to_set(v, sch)
        if is_list:
            out[pe] = {_MEMBER: {}, **sub} if sub else {}
        elif sub:
            out[pe] = sub
    return out


def compare(old: Any, new: Any, schema: Schema) -> tuple[Set, Set, Set]:
    """(added, modified, removed) between two values of one type (typed.Compare).
    A node that exists on one side only is itself added or removed; empty and
    missing maps and lists compare as leaves, keeping the empty/null distinction.
    Equal subtrees are skipped whole (a C-level ==), which keeps an update that
    touches one field cheap."""
    t = type_of(schema)
    added: Set = {}
    modified: Set = {}
    removed: Set = {}
    if isinstance(old, dict) or isinstance(new, dict):
        lmap = old if isinstance(old, dict) else {}
        rmap = new if isinstance(new, dict) else {}
        for k, rv in rmap.items():
            if rv is None:
                continue
            lv = lmap.get(k, MISSING)
            if lv is rv or (lv == rv and type(lv) is type(rv)):
                continue
            known, sch, ct = child(t, k)
            if known:
                _compare_child("f:" + k, MISSING if lv is None else lv, rv, sch, ct, added, modified, removed)
        for k, lv in lmap.items():
            if lv is None or rmap.get(k) is not None:
                continue
            known, sch, ct = child(t, k)
            if known:
                _compare_child("f:" + k, lv, MISSING, sch, ct, added, modified, removed)
        return added, modified, removed
    lhs = {pe: v for pe, v, _ in _entries(t, old)} if old is not MISSING else {}
    rhs = {pe: v for pe, v, _ in _entries(t, new)} if new is not MISSING else {}
    for pe, rv in rhs.items():
        lv = lhs.get(pe, MISSING)
        if lv is rv or (lv == rv and type(lv) is type(rv)):
            continue
        _compare_child(pe, lv, rv, t.elem, type_of(t.elem), added, modified, removed)
    for pe, lv in lhs.items():
        if pe not in rhs:
            _compare_child(pe, lv, MISSING, t.elem, type_of(t.elem), added, modified, removed)
    return added, modified, removed


def _compare_child(pe: str, lv: Any, rv: Any, sch: Schema, ct: TypeInfo, added: Set, modified: Set,
                   removed: Set) -> None:
    if _leafish(ct, lv, rv):
        if lv is MISSING:
            added[pe] = {}
        elif rv is MISSING:
            removed[pe] = {}
        elif lv != rv or type(lv) is not type(rv):
            modified[pe] = {}
        return
    if lv is MISSING:  # a new node: it and everything below it is added
        sub = _everything(rv, sch)
        added[pe] = {_MEMBER: {}, **sub} if sub else {}
        return
    if rv is MISSING:
        sub = _everything(lv, sch)
        removed[pe] = {_MEMBER: {}, **sub} if sub else {}
        return
    a, m, r = compare(lv, rv, sch)
    if a:
        added[pe] = a
    if m:
        modified[pe] = m
    if r:
        removed[pe] = r


def removed(old: Any, new: Any, schema: Schema) -> Set:
    """compare(old, new)'s third set alone (what an Update takes away from every
    manager): the same walk without building the added and modified sets, so a
    write that adds a subtree (a pod's first status) does not enumerate it."""
    t = type_of(schema)
    out: Set = {}
    if isinstance(old, dict) or isinstance(new, dict):
        lmap = old if isinstance(old, dict) else {}
        rmap = new if isinstance(new, dict) else {}
        for k, rv in rmap.items():
            if rv is None:
                continue
            lv = lmap.get(k)
            if lv is None or lv is rv or (lv == rv and type(lv) is type(rv)):
                continue  # added (nothing removed below it) or equal
            known, sch, ct = child(t, k)
            if known and not _leafish(ct, lv, rv):
                r = removed(lv, rv, sch)
                if r:
                    out["f:" + k] = r
        for k, lv in lmap.items():
            if lv is None or rmap.get(k) is not None:
                continue
            known, sch, ct = child(t, k)
            if known:
                out["f:" + k] = _gone(lv, sch, ct)
        return out
    lhs = {pe: v for pe, v, _ in _entries(t, old)} if old is not MISSING else {}
    rhs = {pe: v for pe, v, _ in _entries(t, new)} if new is not MISSING else {}
    ct = type_of(t.elem)
    for pe, rv in rhs.items():
        lv = lhs.get(pe, MISSING)
        if lv is MISSING or lv is rv or (lv == rv and type(lv) is type(rv)):
            continue
        if not _leafish(ct, lv, rv):
            r = removed(lv, rv, t.elem)
            if r:
                out[pe] = r
    for pe, lv in lhs.items():
        if pe not in rhs:
            out[pe] = _gone(lv, t.elem, ct)
    return out


def _gone(lv: Any, sch: Schema, ct: TypeInfo) -> Set:
    """_compare_child's removed node for a value present only on the left."""
    if _leafish(ct, lv, MISSING):
        return {}
    sub = _everything(lv, sch)
    return {_MEMBER: {}, **sub} if sub else {}


def _everything(value: Any, schema: Schema) -> Set:
    """compare(MISSING, value)'s added set below `value`: every node and leaf,
    in serialisation order (see changed())."""
    t = type_of(schema)
    out: Set = {}
    if isinstance(value, dict):
        for k in sorted(value):
            v = value[k]
            if v is None:
                continue
            known, sch, ct = t.kids.get(k) or child(t, k)
            if not known:
                continue
            if not v or is_leaf(ct, v):
                out["f:" + k] = {}
            else:
                sub = _everything(v, sch)
                out["f:" + k] = {_MEMBER: {}, **sub} if sub else {}
        return out
    items = {pe: v for pe, v, _ in _entries(t, value)}
    ct = type_of(t.elem)
    for pe in _ordered(list(items)):
        v = items[pe]
        if not v or is_leaf(ct, v):
            out[pe] = {}
        else:
            sub = _everything(v, t.elem)
            out[pe] = {_MEMBER: {}, **sub} if sub else {}
    return out


def changed(old: Any, new: Any, schema: Schema) -> Set:
    """union(added, modified) of compare(old, new) — the fields an Update sets —
    built in serialisation order by one walk. When no other manager owns
    anything (every create), nothing else is needed: no `removed`, no union,
    and no canonical() pass before the set is written out."""
    t = type_of(schema)
    out: Set = {}
    if isinstance(old, dict) or isinstance(new, dict):
        lmap = old if isinstance(old, dict) else {}
        rmap = new if isinstance(new, dict) else {}
        for k in sorted(rmap):
            rv = rmap[k]
            if rv is None:
                continue
            lv = lmap.get(k)
            if lv is rv or (lv == rv and type(lv) is type(rv)):
                continue
            known, sch, ct = t.kids.get(k) or child(t, k)
            if not known:
                continue
            if lv is None and (not rv or is_leaf(ct, rv)):  # the common case of _changed_child, inline
                out["f:" + k] = {}
                continue
            node = _changed_child(MISSING if lv is None else lv, rv, sch, ct)
            if node is not None:
                out["f:" + k] = node
        return out
    lhs = {pe: v for pe, v, _ in _entries(t, old)} if old is not MISSING else {}
    rhs = {pe: v for pe, v, _ in _entries(t, new)}
    ct = type_of(t.elem)
    for pe in _ordered(list(rhs)):
        rv = rhs[pe]
        lv = lhs.get(pe, MISSING)
        if lv is rv or (lv == rv and type(lv) is type(rv)):
            continue
        node = _changed_child(lv, rv, t.elem, ct)
        if node is not None:
            out[pe] = node
    return out


def _changed_child(lv: Any, rv: Any, sch: Schema, ct: TypeInfo) -> Set | None:
    """_compare_child for changed(): `rv` is present; None when nothing changed."""
    if lv is MISSING:  # added: a leaf (as _leafish decides with nothing on the left), or all of it
        if not rv or is_leaf(ct, rv):
            return {}
        sub = _everything(rv, sch)
        return {_MEMBER: {}, **sub} if sub else {}
    if _leafish(ct, lv, rv):
        return {} if lv != rv or type(lv) is not type(rv) else None
    return changed(lv, rv, sch) or None


def _leafish(t: TypeInfo, lv: Any, rv: Any) -> bool:
    if (lv is not MISSING and is_leaf(t, lv)) or (rv is not MISSING and is_leaf(t, rv)):
        return True
    if (lv is MISSING or not lv) and (rv is MISSING or not rv):
        return True  # both empty or missing: a leaf, so {} vs absent still shows
    return lv is not MISSING and rv is not MISSING and type(lv) is not type(rv)


def remove_items(value: Any, s: Set, schema: Schema) -> Any:
    """`value` without the members of `s` (and their subtrees); a map or list
    left empty by the removal is dropped from its parent (MISSING)."""
    t = type_of(schema)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            node = s.get("f:" + k)
            if node is None:
                out[k] = v
                continue
            if is_member(node):
                continue
            _, sch = child_schema(t if t.kind == "map" else DEDUCED, k)
            v2 = remove_items(v, children(node), sch)
            if v2 is not MISSING:
                out[k] = v2
        return out if out else MISSING
    if isinstance(value, list) and not t.atomic:
        items = []
        for i, v in enumerate(value):
            node = s.get(item_pe(t, v, i))
            if node is None:
                items.append(v)
            elif not is_member(node):
                v2 = remove_items(v, children(node), t.elem)
                if v2 is not MISSING:
                    items.append(v2)
        return items if items else MISSING
    return value


def ensure_named(s: Set, schema: Schema) -> Set:
    """EnsureNamedFieldsAreMembers: struct fields with owned children count as
    owned themselves (map keys and list items do not)."""
    t = type_of(schema)
    out: Set = {}
    for pe, node in s.items():
        if pe == _MEMBER:
            continue
        kids = children(node)
        if not kids:
            out[pe] = node
            continue
        if pe[0] == "f":
            _, sch = child_schema(t if t.kind == "map" else DEDUCED, pe[2:])
            named = t.props is not None and pe[2:] in t.props
        else:
            sch, named = t.elem, False
        sub = ensure_named(kids, sch)
        out[pe] = {_MEMBER: {}, **sub} if (named or is_member(node)) else sub
    return out
