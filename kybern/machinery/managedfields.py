"""managedFields: who set which field of an object, recorded on every write as
k8s.io/apimachinery/pkg/util/managedfields does.

Each entry is one manager's field set (FieldsV1, see fieldpath.py), keyed by
(manager, operation, apiVersion for Update, subresource). An Update write (POST,
PUT, non-apply PATCH) gives its manager the fields it added or changed and takes
them away from everyone else; fields it removed leave every set. Server-side
apply computes its entries itself (kybern/machinery/apply.py) and hands them
over through the request context.

The request context (`REQUEST`) carries the manager name — the `fieldManager`
query parameter, or else the User-Agent up to its first "/" — and the URL's
subresource, so the generic store records fields without knowing about HTTP.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybern.machinery import errors, meta
from kybern.machinery import fieldpath as fp

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # manager, operation, apiVersion ("" for Apply), subresource

MAX_MANAGER_LENGTH = 128
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
UNTRACKED_SUBRESOURCES = ("binding", "finalize")

# fields nobody owns (stripMetaManager): system metadata and the type itself
STRIP = fp.from_paths(("f:apiVersion",), ("f:kind",), ("f:metadata",), *(
    ("f:metadata", "f:" + n) for n in ("name", "namespace", "creationTimestamp", "selfLink", "uid",
                                       "clusterName", "generation", "managedFields", "resourceVersion")))


@dataclass
class Entry:
    manager: str
    operation: str  # "Apply" | "Update"
    api_version: str
    time: str | None
    fields: fp.Set
    subresource: str = ""
    # fields already in serialisation order (fieldsV1 as read, or built so): written out as they are
    stored: fp.Set | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> Key:
        return (self.manager, self.operation, "" if self.operation == "Apply" else self.api_version,
                self.subresource)

    def describe(self) -> str:
        """How conflicts name this manager (printManager)."""
        out = f'"{self.manager}"'
        if self.subresource:
            out += f' with subresource "{self.subresource}"'
        if self.operation == "Update":
            out += f" using {self.api_version}"
        return out

    def to_json(self) -> Obj:
        out: Obj = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = fp.canonical(self.fields, self.stored)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


Managers = dict[Key, Entry]


@dataclass
class WriteRequest:
    """What one write request says about field ownership."""

    manager: str
    subresource: str = ""
    applied: Managers | None = field(default=None)  # set by server-side apply


REQUEST: contextvars.ContextVar[WriteRequest | None] = contextvars.ContextVar("kybern_write", default=None)


def manager_from(field_manager: str | None, user_agent: str | None, options_kind: str = "PatchOptions") -> str:
    """`fieldManager` if given (validated as upstream), else the User-Agent's prefix."""
    if field_manager:
        if len(field_manager) > MAX_MANAGER_LENGTH:
            raise invalid_options(options_kind, "fieldManager", f'Invalid value: "{field_manager}": must be '
                                                                f"less than {MAX_MANAGER_LENGTH} characters")
        if not all(c.isprintable() for c in field_manager):
            raise invalid_options(options_kind, "fieldManager", f'Invalid value: "{field_manager}": must be '
                                                                "made of printable characters")
        return field_manager
    return _manager_from_user_agent(user_agent or "")


@functools.lru_cache(maxsize=256)  # clients send a handful of User-Agents, every write
def _manager_from_user_agent(user_agent: str) -> str:
    out = ""
    for c in user_agent.split("/")[0]:
        if not c.isprintable() or unicodedata.category(c) == "Cc":
            continue
        if len((out + c).encode()) > MAX_MANAGER_LENGTH:
            break
        out += c
    return out or "unknown"


def invalid_options(kind: str, fld: str, message: str, type_: str = "FieldValueInvalid") -> errors.StatusError:
    """422 on a request's options, e.g. `PatchOptions.meta.k8s.io "" is invalid: ...`."""
    return errors.invalid("meta.k8s.io", kind, "", [errors.cause(fld, message, type_)])


# -- encoding ------------------------------------------------------------------------
def decode(obj: Obj | None) -> Managers:
    """The entries of `obj`; malformed ones are dropped (upstream resets them)."""
    out: Managers = {}
    if not obj:
        return out
    raw = (obj.get("metadata") or {}).get("managedFields")
    if not isinstance(raw, list):
        return out
    for e in raw:
        if not isinstance(e, dict) or e.get("operation") not in ("Apply", "Update"):
            continue
        fields = e.get("fieldsV1")
        fields = fields if isinstance(fields, dict) else {}
        entry = Entry(str(e.get("manager") or ""), e["operation"], str(e.get("apiVersion") or ""),
                      e.get("time"), fields, str(e.get("subresource") or ""), stored=fields)
        prev = out.get(entry.key)
        if prev is not None:
            entry.fields = fp.union(prev.fields, entry.fields)
        out[entry.key] = entry
    return out


def encode(obj: Obj, managers: Managers) -> None:
    """Write `managers` into obj.metadata.managedFields in upstream's order:
    Apply before Update, then by time, manager, apiVersion, subresource."""
    entries = sorted((e for e in managers.values() if e.fields),
                     key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    m = obj.setdefault("metadata", {})
    if entries:
        m["managedFields"] = [e.to_json() for e in entries]
    else:
        m.pop("managedFields", None)


def without_managed_fields(obj: Obj) -> Obj:
    """A shallow copy of obj whose metadata lacks managedFields (for comparing)."""
    m = obj.get("metadata")
    if not isinstance(m, dict) or "managedFields" not in m:
        return obj
    return {**obj, "metadata": {k: v for k, v in m.items() if k != "managedFields"}}


_SPEC = fp.from_paths(("f:spec",))
_STATUS = fp.from_paths(("f:status",))
_NOTHING: fp.Set = {}


def reset_fields(has_status: bool, subresource: str) -> fp.Set:
    """Fields a write through this endpoint cannot set (the strategy resets
    them), so nobody comes to own them there (GetResetFields). Shared values:
    callers never mutate sets."""
    if subresource == "status":
        return _SPEC
    if not subresource and has_status:
        return _STATUS
    return _NOTHING


# struct (not pointer) fields that Go serialises even when empty
_STRUCT_FIELDS = frozenset(("metadata", "spec", "status", "template", "strategy", "updateStrategy"))
_skeletons: dict[int, tuple[Any, Obj]] = {}


def _skeleton(schema: Obj | None, depth: int = 0) -> Obj:
    """What an empty Go object serialises to: its non-pointer structs and its
    lists without omitempty (`required` in the schema) exist, empty. Comparing
    a new object against it instead of {} marks the same nodes as created as
    upstream does (`f:spec` has no ".", `f:labels` has)."""
    hit = _skeletons.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    from kybern.api import schemas

    r = schemas.resolve(schema) or {}
    required = set(r.get("required") or ())
    out: Obj = {}
    for name, p in (r.get("properties") or {}).items():
        rp = schemas.resolve(p) or {}
        if rp.get("type") == "array" and name in required:
            out[name] = []
        elif "properties" in rp and (name in required or name in _STRUCT_FIELDS) and depth < 4:
            out[name] = _skeleton(p, depth + 1)
    _skeletons[id(schema)] = (schema, out)
    return out


# -- Update operations -----------------------------------------------------------------
def _owned(base: Obj, new: Obj, schema: Obj | None, ignored: fp.Set) -> fp.Set:
    """The fields an Update of `base` into `new` gives its manager when nobody
    else owns any, in serialisation order (changed(), recursive_difference()
    and difference() all keep it)."""
    return fp.difference(fp.recursive_difference(fp.changed(base, new, schema), ignored), STRIP)


# _owned() of a create's fields outside metadata, by their exact JSON: controllers
# create many objects from one template (a ReplicaSet's pods, a Job's), and the
# walk is most of what tracking a create costs. Values are the set's JSON, so
# every create gets sets of its own. Large objects are walked, not kept (256
# entries of at most 16 KiB and their sets: under 10 MB).
_CREATED_MEMO_SIZE = 256
_CREATED_MEMO_MAX_BYTES = 16 * 1024
_created_memo: dict[tuple[int, int, bytes], tuple[Any, bytes]] = {}

# The memo's key is the object's JSON with every string value of an object field
# blanked ("f":"x" -> "f":""), except fields that may name a list item (list-map
# keys, merge keys): a create's set depends on which fields are set, on list
# items' keys and set lists' values, never on the content of any other string
# (changed() sees a string as a leaf; the skeleton it compares with holds only
# [] and {}). So pods that differ only in names, images or env values share an
# entry. A schema with a "set" list of non-scalars (whose `v:` elements would
# depend on every string) keys on the exact JSON instead.
_shape_res: dict[int, tuple[Any, Any]] = {}


def _shape_re(schema: Obj | None) -> Any:
    """The blanking regex for a kind's schema, or None (exact JSON)."""
    hit = _shape_res.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    import re

    names = _list_key_names(schema)
    rx = None
    if names is not None:
        # `":"` then a string, where the key before is not one of `names`. The
        # lookbehinds run only where the literal `":"` matched (a fast search);
        # the first makes that first quote a string's end (inside a string every
        # quote is escaped), and a string followed by `:` is an object's key.
        guards = b"".join(b'(?<!"' + re.escape(n.encode()) + b'":")' for n in sorted(names))
        rx = re.compile(rb'":"(?<!\\":")' + guards + rb'[^"\\]*(?:\\.[^"\\]*)*"')
    if len(_shape_res) > 1024:
        _shape_res.clear()
    _shape_res[id(schema)] = (schema, rx)
    return rx


def _list_key_names(schema: Obj | None) -> set[str] | None:
    """Every field name that can key a list item under `schema` (list-map keys,
    patch merge keys, the defaulted `protocol`), or None if the schema has a
    set list whose items are not scalars."""
    from kybern.api import schemas

    names = set(fp._KEY_DEFAULTS)
    if schema is None:
        return names
    seen: set[int] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        r = schemas.resolve(node)
        for n in (node, r):
            if not isinstance(n, dict):
                continue
            names.update(n.get("x-kubernetes-list-map-keys") or ())
            if n.get("x-kubernetes-patch-merge-key"):
                names.add(n["x-kubernetes-patch-merge-key"])
        if r is None or id(r) in seen:
            continue
        seen.add(id(r))
        if r.get("type") == "array" or "items" in r:
            ext = {**{k: v for k, v in r.items() if k.startswith("x-")},
                   **{k: v for k, v in node.items() if k.startswith("x-")}}
            lt = ext.get("x-kubernetes-list-type")
            if lt is None and str(ext.get("x-kubernetes-patch-strategy", "")).startswith("merge") and \
                    not ext.get("x-kubernetes-patch-merge-key"):
                lt = "set"
            if lt == "set":
                item = schemas.resolve(r.get("items")) if isinstance(r.get("items"), dict) else None
                if item is None or item.get("type") not in ("string", "integer", "number", "boolean"):
                    return None
        for k in ("properties", "patternProperties"):
            if isinstance(r.get(k), dict):
                stack.extend(r[k].values())
        for k in ("items", "additionalProperties", "not"):
            if isinstance(r.get(k), dict):
                stack.append(r[k])
        for k in ("allOf", "anyOf", "oneOf"):
            if isinstance(r.get(k), list):
                stack.extend(r[k])
    return names


# Every pod gets a volume named kube-api-access-<5 random> from the ServiceAccount
# admission plugin (kybern/apiserver/admission_serviceaccount.py), and a volume's
# name keys its list item, so no two pods would share a memo entry. When that name
# is the only string of its prefix in the object, the entry is keyed and kept with a
# placeholder of the same length in its place: what sorts around it is decided by
# the prefix, so the set with the name put back is the one a walk would give.
_GENERATED_PREFIX = meta.TOKEN_VOLUME_PREFIX.encode()
_GENERATED_PLACEHOLDER = _GENERATED_PREFIX + b"?????"


def _generated_name(body: bytes) -> bytes | None:
    i = body.find(_GENERATED_PREFIX)
    if i < 0:
        return None
    name = body[i:i + len(_GENERATED_PLACEHOLDER)]
    suffix = name[len(_GENERATED_PREFIX):]
    if len(suffix) != 5 or not suffix.isalnum() or not suffix.islower() and not suffix.isdigit():
        return None
    if body.count(_GENERATED_PREFIX) != body.count(name) or body[i + len(name):i + len(name) + 1] != b'"':
        return None
    return name


def _created(skeleton: Obj, new: Obj, schema: Obj | None, ignored: fp.Set) -> fp.Set:
    """_owned(skeleton, new, ...) for a create, looked up by the object's shape
    (its JSON with non-key strings blanked, see _shape_re) when the schema
    allows; otherwise metadata (names, uids, labels: different every time)
    walked and the rest looked up by its exact JSON (each top-level field's set
    depends on that field alone, so the two parts merge by name)."""
    rx = _shape_re(schema)
    part = new if rx is not None else {k: v for k, v in new.items() if k != "metadata"}
    shown = part
    m = new.get("metadata")
    if rx is not None and isinstance(m, dict):
        # metadata's own strings (name, uid, ...) are leaves, whatever the regex keeps
        shown = {**new, "metadata": {k: "" if isinstance(v, str) else v for k, v in m.items()}}
    try:
        body = orjson.dumps(shown)
    except TypeError:  # not JSON as it is: walk all of it
        return _owned(skeleton, new, schema, ignored)
    if len(body) > _CREATED_MEMO_MAX_BYTES:
        return _owned(skeleton, new, schema, ignored)
    generated = _generated_name(body)
    if generated is not None:  # keyed and kept with the name replaced, put back on a hit
        body = body.replace(generated, _GENERATED_PLACEHOLDER)
    key = (id(schema), id(ignored), rx.sub(b'":""', body) if rx is not None else body)
    hit = _created_memo.get(key)
    if hit is not None and hit[0] is schema:
        found = orjson.loads(hit[1] if generated is None else hit[1].replace(_GENERATED_PLACEHOLDER, generated))
    else:
        found = _owned(skeleton, part, schema, ignored)  # the object itself, not `shown`
        if len(_created_memo) >= _CREATED_MEMO_SIZE:
            _created_memo.pop(next(iter(_created_memo), None), None)  # the oldest
        kept = orjson.dumps(found)
        _created_memo[key] = (schema, kept if generated is None else kept.replace(generated, _GENERATED_PLACEHOLDER))
    if rx is not None or "metadata" not in new:
        return found
    meta_set = _owned(skeleton, {"metadata": new["metadata"]}, schema, ignored)
    if not meta_set:
        return found
    merged = {**found, **meta_set}
    return {pe: merged[pe] for pe in sorted(merged)}  # top-level elements are all f:<name>


def record_update(new: Obj, old: Obj | None, *, manager: str, api_version: str, schema: Obj | None,
                  has_status: bool, subresource: str = "") -> None:
    """Track an Update write by `manager`: in place on `new.metadata.managedFields`."""
    managers: Managers = {}
    if not subresource:  # a client may set managedFields itself; subresources never do
        managers = decode(new)
    if not managers:
        managers = decode(old)
    base = without_managed_fields(old) if old is not None else _skeleton(schema)
    ignored = reset_fields(has_status, subresource)
    if not managers:
        # nobody else owns anything (every create): only this write's fields
        # matter, and changed() builds them in serialisation order in one walk
        if old is None:
            mine = _created(base, without_managed_fields(new), schema, ignored)
        else:
            mine = _owned(base, without_managed_fields(new), schema, ignored)
        if mine:
            managers[(manager, "Update", api_version, subresource)] = Entry(
                manager, "Update", api_version, meta.now(), mine, subresource, stored=mine)
        encode(new, managers)
        return
    # changed() is compare()'s union(added, modified) built in serialisation order
    # (recursive_difference() and difference() keep it), so a manager's first
    # entry needs no canonical() sort; removed() is compare()'s third set
    cur = without_managed_fields(new)
    changed = fp.recursive_difference(fp.changed(base, cur, schema), ignored)
    removed = fp.recursive_difference(fp.removed(base, cur, schema), ignored)
    for e in managers.values():
        if changed:
            e.fields = fp.difference(e.fields, changed)  # an Update always wins
        if removed:
            e.fields = fp.difference(e.fields, removed)
    mine = fp.difference(changed, STRIP)
    if mine:
        key = (manager, "Update", api_version, subresource)
        prev = managers.get(key)
        # the union keeps the subtrees of prev's set that `mine` does not touch as
        # they are (the same objects), so those of them that are still prev's
        # fieldsV1 as read are written out without sorting again (canonical())
        managers[key] = Entry(manager, "Update", api_version, meta.now(),
                              fp.union(prev.fields, mine) if prev else mine, subresource,
                              stored=prev.stored if prev else mine)
    encode(new, cap_updates({k: e for k, e in managers.items() if e.fields}))


def cap_updates(managers: Managers, limit: int = MAX_UPDATE_MANAGERS) -> Managers:
    """At most `limit` Update entries: the oldest fold into "ancient-changes"."""
    updaters = sorted((e for e in managers.values() if e.operation == "Update"),
                      key=lambda e: (e.time or "", e.manager))
    if len(updaters) <= limit:
        return managers
    fold = updaters[:len(updaters) - limit + 1]
    out = {k: e for k, e in managers.items() if e not in fold}
    fields: fp.Set = {}
    for e in fold:
        fields = fp.union(fields, e.fields)
    bucket = Entry(ANCIENT_CHANGES, "Update", fold[-1].api_version, fold[-1].time, fields)
    out[bucket.key] = bucket
    return out


def _without_server_set(new: Obj, old: Obj | None, keys: tuple[str, ...]) -> Obj:
    """`new` as the request made it, before the strategy set annotations of its own
    (a DaemonSet's template generation): upstream's field manager runs before the
    strategy, so no manager comes to own them. A shallow copy; `new` is untouched."""
    ann = (new.get("metadata") or {}).get("annotations")
    if not isinstance(ann, dict) or not any(k in ann for k in keys):
        return new
    was = ((old or {}).get("metadata") or {}).get("annotations") or {}
    view_ann = {k: v for k, v in ann.items() if k not in keys}
    view_ann.update({k: was[k] for k in keys if k in was})
    m = dict(new["metadata"])
    if view_ann:
        m["annotations"] = view_ann
    else:
        m.pop("annotations", None)
    return {**new, "metadata": m}


def tracker(info: Any) -> Any:
    """The store's hook for one kind: record the current request's fields on
    every create and update (no-op outside a tracked request)."""
    from kybern.api import schemas

    api_version = info.api_version
    has_status = bool(getattr(info.strategy, "has_status", False))
    schema = schemas.definition(info.definition) if info.definition else None
    server_set = tuple(getattr(info.strategy, "server_set_annotations", ()))

    def track(new: Obj, old: Obj | None, store_subresource: str | None) -> None:
        req = REQUEST.get()
        if req is None:
            return
        sub = req.subresource or store_subresource or ""
        if sub in UNTRACKED_SUBRESOURCES:
            return
        if req.applied is not None:
            encode(new, req.applied)
            return
        seen = _without_server_set(new, old, server_set) if server_set and not sub else new
        try:
            record_update(seen, old, manager=req.manager, api_version=api_version, schema=schema,
                          has_status=has_status, subresource=sub)
            if seen is not new:
                new["metadata"]["managedFields"] = seen["metadata"].get("managedFields")
                if new["metadata"]["managedFields"] is None:
                    del new["metadata"]["managedFields"]
        except RecursionError:
            # as upstream's UpdateNoErrors: the write goes on, ownership stays as it was
            log.warning("managedFields not updated for %s %s: object nested too deep", info.kind,
                        (new.get("metadata") or {}).get("name"))
            m = new.setdefault("metadata", {})
            m.pop("managedFields", None)
            if old is not None and (old.get("metadata") or {}).get("managedFields"):
                m["managedFields"] = old["metadata"]["managedFields"]

    return track
