"""The generic REST store: create, get, list, update, delete and watch for every
kind, parameterised by the kind's strategy — k8s.io/apiserver's
pkg/registry/generic/registry/store.go in Python.

It owns key layout, system metadata (uid, creationTimestamp, generation,
resourceVersion), resourceVersion preconditions, the guaranteed-update loop,
finalizers and graceful deletion, and turning storage events into watch events.
Kinds add behaviour through their strategy, never by copying this file.
"""

from __future__ import annotations

import base64
import contextvars
import datetime as _dt
import json
import logging
import random
from collections.abc import Callable
from typing import Any

import orjson

from kybern.api import omitempty
from kybern.api.customresource import CRStrategy
from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Obj, Strategy
from kybern.apiserver.watchcache import Entry, WatchCache, Watcher
from kybern.machinery import errors, meta, selectors
from kybern.storage import interface as st

log = logging.getLogger(__name__)

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # upstream's SimpleNameGenerator alphabet
MAX_UPDATE_RETRIES = 16
# a generated name that is taken is generated again, up to this many tries in all
# (upstream's RetryGenerateName, GA in 1.32: 5 random characters collide a few
# times in 10,000 names)
NAME_GENERATION_ATTEMPTS = 8

Validator = Callable[[Obj, ResourceInfo, str, list[str]], list[dict[str, str]]]


# whether the create whose admission (before_create) is running is a dry run
CREATE_DRY_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar("kybern_create_dry_run", default=False)
# the Warning headers of the write whose admission (before_create/before_update) is running
ADMISSION_WARNINGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("kybern_admission_warnings",
                                                                                      default=None)

def key_prefix(info: ResourceInfo, namespace: str | None = None) -> str:
    group = info.group if info.storage_group is None else info.storage_group
    base = f"/registry/{group or 'core'}/{info.plural}/"
    if info.namespaced and namespace:
        return f"{base}{namespace}/"
    return base


def object_key(info: ResourceInfo, namespace: str | None, name: str) -> str:
    return key_prefix(info, namespace) + name


def decode(kv: st.KV) -> Obj:
    obj: Obj = orjson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def encode(obj: Obj) -> bytes:
    m = obj.get("metadata", {})
    rv = m.pop("resourceVersion", None)
    try:
        return orjson.dumps(obj)
    finally:
        if rv is not None:
            m["resourceVersion"] = rv


# ObjectMeta's maps and lists are `omitempty`: kube-apiserver decodes every body into
# ObjectMeta (custom resources' too: objectmeta.Coerce, SetObjectMeta), so an empty one
# is not stored or returned. managedFields keeps its own rules (managed-fields tracking).
_OMITEMPTY_META = (("labels", dict), ("annotations", dict), ("finalizers", list), ("ownerReferences", list))


class Encoded:
    """An object's stored JSON in three parts, `encode(obj) == before + meta +
    after` where `meta` is the JSON of its metadata (without resourceVersion),
    so that its wire JSON at a revision, `orjson.dumps(decode(KV(value, rev)))`,
    is a concatenation: decode() appends resourceVersion as metadata's last key.
    (orjson writes an object as `{`, its `"key":value` items joined by `,`, `}`,
    whichever dict holds them.)"""

    __slots__ = ("after", "before", "meta", "value")

    def __init__(self, obj: Obj) -> None:
        m = obj["metadata"]
        pre: Obj = {}
        post: Obj = {}
        cur = pre
        for k, v in obj.items():
            if k == "metadata":
                cur = post
            else:
                cur[k] = v
        p, q = orjson.dumps(pre), orjson.dumps(post)
        self.before = (p[:-1] + b',"metadata":') if len(p) > 2 else b'{"metadata":'
        self.meta = orjson.dumps(m)
        self.after = (b"," + q[1:]) if len(q) > 2 else b"}"
        self.value = self.before + self.meta + self.after

    def wire(self, rev: int) -> bytes:
        """The object's JSON with metadata.resourceVersion = rev, as decode() gives it."""
        meta = self.meta
        rv = b'"resourceVersion":"%d"}' % rev
        return b"".join((self.before, meta[:-1], b"," if len(meta) > 2 else b"", rv, self.after))


def parse_rv(value: str | None, what: str = "resourceVersion") -> int:
    if value in (None, ""):
        return 0
    try:
        rv = int(value)  # type: ignore[arg-type]
        if rv < 0:
            raise ValueError
        return rv
    except ValueError:
        raise errors.bad_request(f"invalid {what}: {value!r}") from None


def encode_continue(rev: int, start: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"v": "meta.k8s.io/v1", "rv": rev, "start": start})).decode()


def decode_continue(token: str) -> tuple[int, str]:
    try:
        d = orjson.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
        return int(d["rv"]), str(d["start"])
    except Exception:
        raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                 "(version meta.k8s.io/v1)") from None


def _drop_nulls(obj: Obj) -> None:
    """`"field": null` means the field is unset, as when Go decodes into a struct;
    defaulting and validation then see an absent field, not None."""
    if not _may_hold_null(obj):  # most bodies have none: one C-speed encode and search
        return
    # walk only the top-level fields that may hold one (an update's nulls are
    # usually in one place, e.g. a status patch's conditions; metadata with its
    # managedFields and the spec are left alone)
    for k in [k for k, v in obj.items() if v is None]:
        del obj[k]
    for v in obj.values():
        _drop_nulls_below(v)


def _status_update(new: Obj, old: Obj) -> Obj:
    """Strategy.prepare_for_status_update(new, old): old with new's status, in
    old's key order, without its copy of old. The fields besides status and
    metadata are old's own values, and metadata a shallow copy of old's: old is
    the update loop's decode of the stored object, used for nothing once the
    update returns, and the loop only sets metadata's own keys (resourceVersion,
    managedFields, system fields)."""
    has = "status" in new
    out = {k: (new["status"] if k == "status" else v) for k, v in old.items() if has or k != "status"}
    if has and "status" not in old:
        out["status"] = new["status"]
    m = out["metadata"] = dict(old["metadata"])
    m["resourceVersion"] = (new.get("metadata") or {}).get("resourceVersion")
    return out


def _drop_nulls_in(obj: Obj, key: str) -> None:
    """_drop_nulls() for obj[key] alone (its other fields are known to hold none)."""
    v = obj[key]
    if v is None:
        del obj[key]
    else:
        _drop_nulls_below(v)


def _drop_nulls_below(v: Any) -> None:
    """The nulls inside a top-level field's value (a map, or a list of maps)."""
    if isinstance(v, (dict, list)) and _may_hold_null(v):
        if isinstance(v, dict):
            _drop_null_values(v)
        else:
            for item in v:
                if isinstance(item, dict):
                    _drop_null_values(item)


def _may_hold_null(value: Any) -> bool:
    """False only if no `null` is anywhere in value (a string containing "null" says True)."""
    try:
        return b"null" in orjson.dumps(value)
    except TypeError:  # not JSON-encodable as it is (e.g. an int past 64 bits): walk it
        return True


def _drop_null_values(obj: Obj) -> None:
    for k in [k for k, v in obj.items() if v is None]:
        del obj[k]
    for v in obj.values():
        if isinstance(v, dict):
            _drop_null_values(v)
        elif isinstance(v, list):
            for item in v:
                if isinstance(item, dict):
                    _drop_null_values(item)


class Predicate:
    """Label and field selectors of a list or watch request."""

    def __init__(self, label_selector: str | None = None, field_selector: str | None = None) -> None:
        self.labels = selectors.parse_label_selector(label_selector)
        self.fields = selectors.parse_field_selector(field_selector)

    @property
    def empty(self) -> bool:
        return not self.labels and not self.fields

    def matches(self, obj: Obj) -> bool:
        if self.labels and not selectors.matches(self.labels, obj.get("metadata", {}).get("labels")):
            return False
        for path, op, want in self.fields:
            got = selectors.field_value(obj, path)
            if (got == want) != (op == "="):
                return False
        return True


class RESTStore:
    """One kind's storage operations. Stateless apart from its configuration."""

    def __init__(self, info: ResourceInfo, storage: st.Store, *, validator: Validator | None = None,
                 namespace_check: Callable[[str], Any] | None = None,
                 before_create: Callable[[Obj], Any] | None = None,
                 before_update: Callable[[Obj, Obj], Any] | None = None,
                 cache: WatchCache | None = None,
                 track_fields: Callable[[Obj, Obj | None, str | None], None] | None = None,
                 status_scope: tuple[str, ...] | None = None) -> None:
        self.info = info
        self.storage = storage
        # watches, resourceVersion=0 reads and bookmarks are served from the watch cache
        self.cache = cache or WatchCache.for_storage(storage)
        self.prefix = key_prefix(info)
        # the cache holds the storage version; a store seen through another version converts
        conv = getattr(storage, "converter", None)
        self._convert = None if conv is None or getattr(storage, "api_version", None) == \
            conv.storage_version else (lambda o: conv.convert(o, info.api_version))
        # the cache's bytes are this store's wire bytes: no conversion, the same storage
        self._same_bytes = conv is None and self.cache.storage is storage
        self.strategy = info.strategy
        assert self.strategy is not None
        # a built-in kind's empty omitempty lists and maps are dropped on every write, as
        # its round trip through the Go type drops them (kybern/api/omitempty.py); custom
        # resources are kept as sent, as upstream's unstructured ones
        self._omitempty = None if isinstance(self.strategy, CRStrategy) else info.definition
        self.validator = validator
        self.namespace_check = namespace_check
        self.before_create = before_create  # async hook after validation (e.g. IP allocation)
        self.before_update = before_update  # async hook (new, old) after an update's validation
        self.webhooks: Any = None  # admission webhooks (kybern/apiserver/admission_webhooks.py), set by the server
        # built-in admission of subresource writes (e.g. certificatesigningrequests' approval), set by the server
        self.subresource_admission: dict[str, Callable[[Obj, Obj], Any]] = {}
        # records metadata.managedFields for the request's field manager (managedfields.tracker)
        self.track_fields = track_fields
        # the top-level fields a status update's schema validation looks at (None: all):
        # the rest is the stored object's, validated when it was written (upstream's
        # status strategies validate status and metadata only)
        self.status_scope = status_scope

    # -- helpers --------------------------------------------------------------
    def predicate(self, label_selector: str | None, field_selector: str | None) -> Predicate:
        """A request's selectors; a field the kind does not index is a 400, as upstream."""
        pred = Predicate(label_selector, field_selector)
        for path, _op, _value in pred.fields:
            why = self.strategy.field_label_error(path)  # type: ignore[union-attr]
            if why:
                raise errors.bad_request(why)
        # the conversion func's renames: to the stored object's field (old names, another version's)
        aliases = self.strategy.field_label_aliases  # type: ignore[union-attr]
        if aliases:
            pred.fields = [(aliases.get(path, path), op, value) for path, op, value in pred.fields]
        return pred

    def _not_found(self, name: str) -> errors.StatusError:
        return errors.not_found(self.info.group, self.info.plural, name)

    def _invalid(self, name: str, causes: list[dict[str, str]]) -> errors.StatusError:
        return errors.invalid(self.info.group, self.info.kind, name, causes)

    def _check_type(self, obj: Any, nulls: bool = True) -> Obj:
        """The body's kind and apiVersion, its `null`s dropped (`nulls`; else only
        top-level ones, the caller drops the rest where it keeps the body's values)."""
        if not isinstance(obj, dict):
            raise errors.bad_request(f"the object provided is not a valid {self.info.kind}")
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != self.info.kind or av and av != self.info.api_version:
            raise errors.bad_request(
                f"the API version in the data ({av}) does not match the expected API version "
                f"({self.info.api_version})" if av and av != self.info.api_version else
                f"the kind in the data ({kind}) does not match the expected kind ({self.info.kind})")
        obj["apiVersion"], obj["kind"] = self.info.api_version, self.info.kind
        raw = self.strategy.raw_fields if self.strategy is not None else ()
        if nulls and raw:
            kept = {k: obj[k] for k in raw if obj.get(k) is not None}
            for k in kept:
                obj[k] = 0  # a stand-in that holds no null and keeps the key's place
            _drop_nulls(obj)
            obj.update(kept)
        elif nulls:
            _drop_nulls(obj)
        else:
            for k in [k for k, v in obj.items() if v is None]:
                del obj[k]
        if not isinstance(obj.get("metadata", {}), dict):
            raise errors.bad_request("metadata must be an object")
        m = obj.setdefault("metadata", {})
        for k, t in _OMITEMPTY_META:  # as the body's round trip through ObjectMeta drops them
            if k in m and not m[k] and type(m[k]) is t:
                del m[k]
        return obj

    def _prepare(self, fn: Callable[[], Any], obj: Obj, field_validation: str, warnings: list[str]) -> None:
        """Run a strategy's defaulting; if a value of the wrong type trips it, the
        schema check names the field (400/422) instead of a 500."""
        try:
            fn()
        except (TypeError, AttributeError, KeyError, ValueError) as e:
            self._validate(obj, list, field_validation, warnings)
            log.warning("%s defaulting failed on a schema-valid object: %r", self.info.kind, e)
            raise errors.bad_request(f"the object provided is not a valid {self.info.kind}: {e}") from None

    def _validate(self, obj: Obj, extra: Callable[[], list[dict[str, str]]], field_validation: str,
                  warnings: list[str], scope: tuple[str, ...] | None = None) -> None:
        """Schema first (type errors there would trip the strategy's checks), then
        the kind's own rules; every cause is reported at once, as upstream. With
        `scope`, the schema check sees only those top-level fields (the same
        dicts: pruning unknown fields below them prunes obj's)."""
        causes: list[dict[str, str]] = []
        if self.validator is not None:
            part = obj if scope is None else {k: v for k, v in obj.items() if k in scope}
            causes = self.validator(part, self.info, field_validation, warnings)
        try:
            causes += extra()
        except (TypeError, AttributeError, KeyError, ValueError) as e:
            if not causes:  # a strategy check tripped over a value the schema allows: still the client's 4xx
                log.warning("%s validation failed on a schema-valid object: %r", self.info.kind, e)
                raise errors.bad_request(f"the object provided is not a valid {self.info.kind}: {e}") from None
        if causes:
            raise self._invalid(obj["metadata"].get("name", ""), causes)

    def _meta_causes(self, obj: Obj, old: Obj | None = None) -> list[dict[str, str]]:
        from kybern.api.strategy import (validate_annotations, validate_finalizers, validate_labels,
                                         validate_owner_references)

        m = obj["metadata"]
        out = []
        name = m.get("name")
        gen = m.get("generateName")
        if gen and isinstance(gen, str):
            # upstream checks the prefix too (as a prefix: a trailing '-' counts as a letter, its
            # maskTrailingDash), reported before the generated name's own errors
            masked = gen[:-1] + "a" if len(gen) > 1 and gen.endswith("-") else gen
            causes = self.strategy.name_validator(masked, "metadata.generateName")  # type: ignore[union-attr]
            out.extend({**c, "message": c["message"].replace(json.dumps(masked), json.dumps(gen), 1)}
                       for c in causes)
        if name:
            out.extend(self.strategy.name_validator(name, "metadata.name"))  # type: ignore[union-attr]
        out.extend(validate_labels(m.get("labels"), "metadata.labels"))
        out.extend(validate_annotations(m.get("annotations"), "metadata.annotations"))
        out.extend(validate_finalizers(m, old["metadata"] if old is not None else None))
        if m.get("ownerReferences"):
            out.extend(validate_owner_references(m["ownerReferences"]))
        return out

    # -- reads ----------------------------------------------------------------
    async def get(self, namespace: str | None, name: str, *, resource_version: str | None = None) -> Obj:
        if resource_version == "0":  # "any version": the watch cache, as upstream
            entry = await self.cache.get(self.prefix, object_key(self.info, namespace, name))
            if entry is None:
                raise self._not_found(name)
            return self._typed(self._view(entry).decode())
        kv, _ = await self.storage.get(object_key(self.info, namespace, name))
        if kv is None:
            raise self._not_found(name)
        return decode(kv)

    async def get_encoded(self, namespace: str | None, name: str, *, resource_version: str | None = None) -> bytes:
        """get() as wire JSON: `orjson.dumps(get(...))`, byte for byte. A read from
        storage answers with the watch cache's bytes of the same object version
        when the cache holds it (same key and revision: same stored value, and
        the cache encodes it exactly as decode() + dumps would), so the usual GET
        decodes and encodes nothing; the read itself stays a consistent storage
        read, as upstream's GET without resourceVersion."""
        if not self._same_bytes or resource_version == "0":
            return orjson.dumps(await self.get(namespace, name, resource_version=resource_version))
        key = object_key(self.info, namespace, name)
        rc = self.cache.resources.get(self.prefix)
        entry = rc.objects.get(key) if rc is not None else None
        # the usual case: the cache holds the key's current version; storage is
        # asked only for its revision (SQLite: the (name, id) index, no row read)
        if entry is not None and await self.storage.mod_revision(key) == entry.rv:
            return entry.raw
        kv, _ = await self.storage.get(key)
        if kv is None:
            raise self._not_found(name)
        if entry is not None and entry.rv == kv.mod_revision:
            return entry.raw
        return orjson.dumps(decode(kv))

    async def list(self, namespace: str | None, *, pred: Predicate, limit: int = 0,
                   continue_: str | None = None, resource_version: str | None = None) -> Obj:
        prefix = key_prefix(self.info, namespace)
        if await self._from_cache(resource_version, limit, continue_):
            entries, crev = await self.cache.list(self.prefix, prefix, pred)
            return {"kind": self.info.list_kind, "apiVersion": self.info.api_version,
                    "metadata": {"resourceVersion": str(crev)},
                    "items": [self._typed(self._view(e).decode()) for e in entries]}
        rev, start = 0, ""
        if continue_:
            rev, start = decode_continue(continue_)
            start = prefix + start
        elif resource_version not in (None, "", "0"):
            rev = parse_rv(resource_version)
        items: list[Obj] = []
        more = False
        next_start = ""
        try:
            while True:
                want = (limit - len(items)) if limit else 0
                res = await self.storage.list(prefix, revision=rev, start=start,
                                              limit=max(want, 1) if limit else 0)
                rev = res.revision
                for kv in res.kvs:
                    obj = decode(kv)
                    if pred.empty or pred.matches(obj):
                        items.append(obj)
                if not res.more:
                    break
                start = res.kvs[-1].key + "\x00"
                if limit and len(items) >= limit:
                    more = True
                    next_start = start[len(prefix):]
                    break
        except st.FutureRevision:
            raise errors.StatusError(504, "Timeout", f"Too large resource version: {rev}, current: "
                                     f"{await self.storage.current_revision()}",
                                     details={"causes": [{"reason": "ResourceVersionTooLarge",
                                                          "message": "Too large resource version"}],
                                              "retryAfterSeconds": 1}) from None
        except st.Compacted:
            raise errors.StatusError(410, "Expired", "The provided continue parameter is too old to display "
                                     "a consistent list result. You can start a new list without the continue "
                                     "parameter, or use the continue token in this response to retrieve the "
                                     "remainder of the results. Continuing with the provided token results in an "
                                     "inconsistent list - objects that were created, modified, or deleted "
                                     "between the time the first chunk was returned and now may show up in the "
                                     "list.") from None
        for o in items:
            o["apiVersion"], o["kind"] = self.info.api_version, self.info.kind
        lmeta: Obj = {"resourceVersion": str(rev)}
        if more:
            lmeta["continue"] = encode_continue(rev, next_start)
        return {"kind": self.info.list_kind, "apiVersion": self.info.api_version,
                "metadata": lmeta, "items": items}

    async def _from_cache(self, resource_version: str | None, limit: int, continue_: str | None) -> bool:
        """Which lists the watch cache serves, as upstream 1.32's cacher: "any
        version" (resourceVersion=0; limit ignored) and, once the cache has caught
        up with storage, consistent lists without limit or continue
        (ConsistentListFromCache). Exact revisions and pages read storage."""
        if continue_:
            return False
        if resource_version == "0":
            return True
        return resource_version in (None, "") and not limit and await self.cache.wait_fresh()

    async def list_encoded(self, namespace: str | None, *, pred: Predicate, resource_version: str | None,
                           limit: int = 0) -> bytes | None:
        """A cache-served list as wire JSON straight from the cache's bytes (no
        per-item decode/encode); None when the request is not cache-served."""
        if not await self._from_cache(resource_version, limit, None):
            return None
        entries, crev = await self.cache.list(self.prefix, key_prefix(self.info, namespace), pred)
        head = orjson.dumps({"kind": self.info.list_kind, "apiVersion": self.info.api_version,
                             "metadata": {"resourceVersion": str(crev)}})
        return head[:-1] + b',"items":[' + b",".join(self._view(e).raw for e in entries) + b"]}"

    def _view(self, entry: Entry) -> Entry:
        """A cache entry in this store's API version."""
        if self._convert is None:
            return entry
        return Entry(entry.key, entry.rv, orjson.dumps(self._convert(entry.decode())), entry.labels, entry.fields)

    # -- create ---------------------------------------------------------------
    async def create(self, namespace: str | None, obj: Any, *, dry_run: bool = False,
                     field_validation: str = "Strict", warnings: list[str] | None = None) -> Obj:
        return (await self._create(namespace, obj, dry_run=dry_run, field_validation=field_validation,
                                   warnings=warnings))[0]

    async def create_wire(self, namespace: str | None, obj: Any, *, dry_run: bool = False,
                          field_validation: str = "Strict", warnings: list[str] | None = None
                          ) -> tuple[Obj, bytes | None]:
        """create(), and the created object's wire JSON (`orjson.dumps` of it, byte
        for byte) spliced from the stored bytes rather than encoded a second time;
        None when there are none (dry run)."""
        return await self._create(namespace, obj, dry_run=dry_run, field_validation=field_validation,
                                  warnings=warnings)

    async def _create(self, namespace: str | None, obj: Any, *, dry_run: bool = False,
                      field_validation: str = "Strict", warnings: list[str] | None = None
                      ) -> tuple[Obj, bytes | None]:
        warnings = warnings if warnings is not None else []
        obj = self._check_type(obj)
        m = obj["metadata"]
        if self.info.namespaced:
            if m.get("namespace") and namespace and m["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the "
                                         "namespace sent on the request")
            m["namespace"] = namespace or m.get("namespace") or "default"
            if self.namespace_check:
                try:
                    await self.namespace_check(m["namespace"])
                except errors.StatusError as e:
                    if e.code != 403:
                        raise
                    # upstream's NewForbidden names what was refused: `configmaps "x" is forbidden: ...`
                    q = f"{self.info.plural}.{self.info.group}" if self.info.group else self.info.plural
                    what = f'{q} "{m["name"]}"' if m.get("name") else q
                    details = {"kind": self.info.plural, **({"name": m["name"]} if m.get("name") else {}),
                               **({"group": self.info.group} if self.info.group else {})}
                    raise errors.StatusError(403, "Forbidden", f"{what} is forbidden: {e.message}",
                                             details=details) from None
        else:
            m.pop("namespace", None)
        generated = not m.get("name") and bool(m.get("generateName"))
        if not m.get("name"):
            if generated:
                m["name"] = m["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
            else:
                raise self._invalid("", [errors.cause("metadata.name",
                                                      "Required value: name or generateName is required",
                                                      "FieldValueRequired")])
        m["uid"] = meta.new_uid()
        m["creationTimestamp"] = meta.now()
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            m.pop(k, None)
        if self.strategy.tracks_generation:  # type: ignore[union-attr]
            m["generation"] = 1
        else:
            m.pop("generation", None)
        self._prepare(lambda: self.strategy.prepare_for_create(obj), obj,  # type: ignore[union-attr]
                      field_validation, warnings)
        self._validate(obj, lambda: self._meta_causes(obj) + self.strategy.validate(obj),  # type: ignore[union-attr]
                       field_validation, warnings)
        admitting = (self.webhooks is not None and self.webhooks.active(self, None)) or self.before_create is not None
        if self.track_fields is not None:
            # the request's manager owns what it sent and the defaults, not what mutating
            # admission adds after (a pod's service account volume, priority, tolerations):
            # upstream's create handler runs the field manager before admission, so a
            # later apply without those fields does not take them away
            if self._omitempty and admitting:
                omitempty.drop_empty(self._omitempty, obj)
            self.track_fields(obj, None, None)
        if self.webhooks is not None and self.webhooks.active(self, None):
            await self.webhooks.admit(self, "CREATE", obj, None, subresource=None, dry_run=dry_run,
                                      field_validation=field_validation, warnings=warnings)
        if self.before_create is not None:
            token = CREATE_DRY_RUN.set(dry_run)  # admission that writes (quota charges) skips a dry run
            wtoken = ADMISSION_WARNINGS.set(warnings)
            try:
                await self.before_create(obj)
            finally:
                CREATE_DRY_RUN.reset(token)
                ADMISSION_WARNINGS.reset(wtoken)
        if self._omitempty:
            omitempty.drop_empty(self._omitempty, obj)
        if self.track_fields is not None and not admitting:
            self.track_fields(obj, None, None)
        if dry_run:  # as upstream's DryRunnableStorage: a name in use is AlreadyExists
            kv, _ = await self.storage.get(object_key(self.info, m.get("namespace"), m["name"]))
            if kv is not None and not generated:
                raise errors.already_exists(self.info.group, self.info.plural, m["name"])
            return obj, None
        for attempt in range(NAME_GENERATION_ATTEMPTS if generated else 1):
            if attempt:
                m["name"] = m["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
            key = object_key(self.info, m.get("namespace"), m["name"])
            if "resourceVersion" in m:  # set again since dropped above (not by any strategy today)
                enc, value = None, encode(obj)
            else:  # the stored bytes are encode(obj), in parts
                enc = Encoded(obj)
                value = enc.value
                if self._same_bytes:  # the watch cache builds its entry from the parts, no decode
                    self.cache.expect(self.prefix, key, enc, obj)
            try:
                rev = await self.storage.create(key, value)
                break
            except st.KeyExists:
                continue
        else:
            raise errors.already_exists(self.info.group, self.info.plural, m["name"])
        m["resourceVersion"] = str(rev)
        return obj, enc.wire(rev) if enc is not None else None

    # -- update ---------------------------------------------------------------
    async def update(self, namespace: str | None, name: str,
                     make: Callable[[Obj | None], Obj], *, subresource: str | None = None,
                     dry_run: bool = False, field_validation: str = "Strict",
                     warnings: list[str] | None = None, force_allow_create: bool = False) -> tuple[Obj, bool]:
        """Guaranteed update: read, compute the new object with `make(current)`,
        write guarded by the read revision, retry on a lost race. `make` raises
        to refuse (e.g. a resourceVersion precondition); it gets a copy of the
        current object of its own. Returns (obj, created)."""
        obj, created, _ = await self.update_wire(namespace, name, make, subresource=subresource, dry_run=dry_run,
                                                 field_validation=field_validation, warnings=warnings,
                                                 force_allow_create=force_allow_create)
        return obj, created

    async def update_wire(self, namespace: str | None, name: str,
                          make: Callable[[Obj | None], Obj], *, subresource: str | None = None,
                          dry_run: bool = False, field_validation: str = "Strict",
                          warnings: list[str] | None = None, force_allow_create: bool = False
                          ) -> tuple[Obj, bool, bytes | None]:
        """update(), and the written object's wire JSON (`orjson.dumps` of it, byte
        for byte) spliced from the stored bytes, as create_wire(); None when
        nothing was written by this update (no change, dry run, a delete, a create)."""
        warnings = warnings if warnings is not None else []
        key = object_key(self.info, namespace, name)
        for attempt in range(MAX_UPDATE_RETRIES):
            # the first try starts from the watch cache's copy when it holds the key, as
            # upstream's cacher hands its object to GuaranteedUpdate: no storage read.
            # The write is guarded by that revision; if storage has moved past it, the
            # write fails and the update starts again from storage, as does an error
            # (404, 409, 422, ...) unless storage still holds that very version
            cached = self._cached(key) if attempt == 0 and not dry_run else None
            mark = len(warnings)
            try:
                done = await self._update_once(key, namespace, name, make, cached, subresource, dry_run,
                                               field_validation, warnings, force_allow_create)
            except errors.StatusError:
                if cached is None or await self.storage.mod_revision(key) == cached.rv:
                    raise
                done = None
            if done is not None:
                return done
            del warnings[mark:]  # a try that is not the answer warns of nothing
        raise errors.conflict(self.info.group, self.info.plural, name, "too many concurrent updates")

    def _cached(self, key: str) -> Entry | None:
        """The watch cache's entry for key, when its bytes are this store's."""
        if not self._same_bytes:
            return None
        rc = self.cache.resources.get(self.prefix)
        return rc.objects.get(key) if rc is not None else None

    async def _update_once(self, key: str, namespace: str | None, name: str, make: Callable[[Obj | None], Obj],
                           cached: Entry | None, subresource: str | None, dry_run: bool, field_validation: str,
                           warnings: list[str], force_allow_create: bool) -> tuple[Obj, bool, bytes | None] | None:
        """One try of update_wire() from `cached` (else a storage read); None: try again."""
        strategy = self.strategy
        assert strategy is not None
        if cached is not None:  # the watch cache's copy: its wire bytes are decode()'s JSON
            current: Obj | None = orjson.loads(cached.raw)
            fresh: Callable[[], Obj] | None = lambda: orjson.loads(cached.raw)
        else:
            kv, _ = await self.storage.get(key)
            current = decode(kv) if kv else None
            fresh = (lambda: decode(kv)) if kv is not None else None  # type: ignore[union-attr]
        new = self._apply_change(make, fresh)
        # a status update keeps only the body's status: its nulls alone are dropped, below
        new = self._check_type(new, nulls=subresource != "status")
        nm = new["metadata"]
        if nm.get("name") and nm["name"] != name:
            raise errors.bad_request(f"the name of the object ({nm['name']}) does not match the name on "
                                     f"the URL ({name})")
        nm["name"] = name
        if current is None:
            if not (strategy.allow_create_on_update or force_allow_create) or subresource:
                raise self._not_found(name)
            return await self.create(namespace, new, dry_run=dry_run,
                                     field_validation=field_validation, warnings=warnings), True, None
        want_rv = nm.get("resourceVersion")
        if want_rv == "0":
            want_rv = None  # upstream parses it to 0: no precondition, as if left out
        if want_rv and want_rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(self.info.group, self.info.plural, name, errors.OPTIMISTIC_LOCK)
        if nm.get("uid") and nm["uid"] != current["metadata"].get("uid"):
            # a uid in the body is a precondition, as upstream's defaultUpdatedObjectInfo
            raise errors.conflict(self.info.group, self.info.plural, name,
                                  f"Precondition failed: UID in precondition: {nm['uid']}, "
                                  f"UID in object meta: {current['metadata'].get('uid')}")
        if not want_rv and not strategy.allow_unconditional_update:
            raise self._invalid(name, [errors.cause("metadata.resourceVersion",
                                                    "Invalid value: 0x0: must be specified for an update")])
        old = current
        if subresource == "status":
            if type(strategy).prepare_for_status_update is Strategy.prepare_for_status_update:
                new = _status_update(new, old)  # what it returns, sharing old's other parts
            else:
                new = strategy.prepare_for_status_update(new, old)
            if "status" in new:
                _drop_nulls_in(new, "status")
            causes = lambda: strategy.validate_status_update(new, old)  # noqa: E731
        elif subresource == "approval":  # certificatesigningrequests: only the conditions change
            new = strategy.prepare_for_approval_update(new, old)  # type: ignore[attr-defined]
            causes = lambda: strategy.validate_approval_update(new, old)  # type: ignore[attr-defined]  # noqa: E731
        elif subresource == "binding":
            causes = list  # the binding REST writes nodeName and status itself
        elif subresource == "finalize":
            new = strategy.prepare_for_finalize(new, old)  # type: ignore[attr-defined]
            causes = list
        elif subresource == "ephemeralcontainers":  # pods: only spec.ephemeralContainers changes
            new = strategy.prepare_for_ephemeral_update(new, old)  # type: ignore[attr-defined]
            causes = lambda: strategy.validate_ephemeral_update(new, old)  # type: ignore[attr-defined]  # noqa: E731
        else:
            self._keep_system_meta(new, old)
            self._prepare(lambda: strategy.prepare_for_update(new, old), new, field_validation, warnings)
            causes = lambda: self._meta_causes(new, old) + strategy.validate_update(new, old)  # noqa: E731
            new["metadata"].pop("generation", None)
            if "generation" in old["metadata"]:
                new["metadata"]["generation"] = old["metadata"]["generation"]
            if strategy.tracks_generation and strategy.spec_changed(new, old) and \
                    (not self._omitempty or self._spec_changed_once_dropped(new, old)):
                new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        self._keep_system_meta(new, old)
        self._validate(new, causes, field_validation, warnings,
                       scope=self.status_scope if subresource in ("status", "approval") else None)
        if self.webhooks is not None and self.webhooks.active(self, subresource):
            await self.webhooks.admit(self, "UPDATE", new, old, subresource=subresource, dry_run=dry_run,
                                      field_validation=field_validation, warnings=warnings, causes=causes,
                                      scope=self.status_scope if subresource == "status" else None)
        if subresource in self.subresource_admission:
            await self.subresource_admission[subresource](new, old)
        if self.before_update is not None and subresource in (None, "ephemeralcontainers"):
            wtoken = ADMISSION_WARNINGS.set(warnings)
            try:
                await self.before_update(new, old)
            finally:
                ADMISSION_WARNINGS.reset(wtoken)
        if self._omitempty:
            omitempty.drop_empty(self._omitempty, new)
        if self.track_fields is not None:
            self.track_fields(new, old, subresource)
        if meta.is_deleting(new) and not new["metadata"].get("finalizers") and \
                not old["metadata"].get("deletionGracePeriodSeconds") and not strategy.holds_deletion(new):
            # the last finalizer went away: the object goes (ShouldDeleteDuringUpdate)
            if dry_run:
                return new, False, None
            try:
                await self.storage.delete(key, int(old["metadata"]["resourceVersion"]))
            except st.Conflict:
                return None
            except st.KeyNotFound:
                raise self._not_found(name) from None
            return new, False, None
        old_rv = old["metadata"]["resourceVersion"]
        new["metadata"]["resourceVersion"] = old_rv
        if new == old or dry_run:
            if cached is not None and await self.storage.mod_revision(key) != cached.rv:
                return None  # no change to a version storage has moved past: again, from storage
            return new, False, None
        # the stored bytes are encode(new), in parts (as a create's): the answer and
        # this process's watch-cache entry are spliced from them, not encoded again
        nm = new["metadata"]
        del nm["resourceVersion"]
        try:
            enc = Encoded(new)
        finally:
            nm["resourceVersion"] = old_rv  # last in metadata, as encode() leaves it
        if self._same_bytes:
            self.cache.expect(self.prefix, key, enc, new)
        try:
            rev = await self.storage.update(key, enc.value, int(old_rv))
        except st.Conflict:
            if want_rv and cached is None:
                raise errors.conflict(self.info.group, self.info.plural, name,
                                      errors.OPTIMISTIC_LOCK) from None
            return None
        except st.KeyNotFound:
            raise self._not_found(name) from None
        nm["resourceVersion"] = str(rev)
        return new, False, enc.wire(rev)

    def _apply_change(self, make: Callable[[Obj | None], Obj], fresh: Callable[[], Obj] | None) -> Obj:
        """The client's change (a body or a patch) applied to the current object,
        `make` given a copy of its own, `fresh()`: decoded again from the stored
        or cached bytes (a deep copy of the current object, several times cheaper
        than copy.deepcopy).
        A change that cannot be applied is the client's error: 400, never a 500
        (upstream answers some malformed strategic merge patches with a 500)."""
        try:
            return make(fresh() if fresh is not None else None)
        except errors.StatusError as e:
            if e.code != 500:
                raise
            raise errors.bad_request(e.message.removeprefix("Internal error occurred: ")) from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as e:
            log.warning("%s: applying a change failed: %r", self.info.kind, e)
            raise errors.bad_request(f"the change cannot be applied to the {self.info.kind}: {e}") from None

    def _spec_changed_once_dropped(self, new: Obj, old: Obj) -> bool:
        """Upstream compares specs after the Go round trip, where an empty omitempty
        list or map (`namespaces: []` in a re-applied manifest) is no value: such a
        change is no change, and the generation stays."""
        assert self._omitempty is not None and self.strategy is not None
        omitempty.drop_empty(self._omitempty, new)
        return self.strategy.spec_changed(new, old)

    @staticmethod
    def _keep_system_meta(new: Obj, old: Obj) -> None:
        """Fields only the server sets keep their stored values on update."""
        nm, om = new.setdefault("metadata", {}), old["metadata"]
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace"):
            if k in om:
                nm[k] = om[k]
            else:
                nm.pop(k, None)

    # -- delete ---------------------------------------------------------------
    async def delete(self, namespace: str | None, name: str, options: Obj | None = None, *,
                     dry_run: bool = False, warnings: list[str] | None = None) -> tuple[Obj, bool]:
        """Returns (object, deleted_now). With finalizers or a grace period the
        object is only marked (deletionTimestamp) and stays until they are done."""
        options = options or {}
        key = object_key(self.info, namespace, name)
        strategy = self.strategy
        assert strategy is not None
        for _ in range(MAX_UPDATE_RETRIES):
            kv, _ = await self.storage.get(key)
            if kv is None:
                raise self._not_found(name)
            obj = decode(kv)
            m = obj["metadata"]
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != m.get("uid"):
                raise errors.conflict(self.info.group, self.info.plural, name,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, "
                                      f"UID in object meta: {m.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != m["resourceVersion"]:
                raise errors.conflict(self.info.group, self.info.plural, name,
                                      f"Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                      f"{m['resourceVersion']}")
            if self.webhooks is not None and self.webhooks.active(self, None):
                await self.webhooks.admit(self, "DELETE", None, obj, subresource=None, dry_run=dry_run,
                                          field_validation="Strict", warnings=[] if warnings is None else warnings,
                                          options=options)
            policy = options.get("propagationPolicy")
            if options.get("orphanDependents") is True:
                policy = "Orphan"
            finalizers = list(m.get("finalizers") or [])
            if policy is None and options.get("orphanDependents") is None and \
                    strategy.default_gc_policy == "Orphan" and "foregroundDeletion" not in finalizers:
                policy = "Orphan"  # the kind's DefaultGarbageCollectionPolicy (Jobs, ReplicationControllers)
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers = [f for f in finalizers if f != "foregroundDeletion"] + ["orphan"]
            elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers = [f for f in finalizers if f != "orphan"] + ["foregroundDeletion"]
            elif policy == "Background":
                finalizers = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
            requested = options.get("gracePeriodSeconds")
            grace = strategy.grace_period(obj, int(requested) if requested is not None else None)
            deleting = bool(m.get("deletionTimestamp"))
            held = strategy.holds_deletion(obj)
            forced = deleting and grace == 0 and not finalizers and not held
            if (finalizers or grace > 0 or held) and not forced:
                changed = False
                prev_grace = m.get("deletionGracePeriodSeconds")
                if not deleting or (prev_grace is not None and grace < prev_grace):
                    # only a shorter period, counted from the first request (BeforeDelete); down
                    # to 0, so the last finalizer's removal deletes the object (a kubelet's final
                    # delete of a pod whose Job still holds it)
                    when = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=grace)
                    if deleting:
                        when = meta.parse_time(m["deletionTimestamp"]) + _dt.timedelta(seconds=grace - prev_grace)
                    m["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
                    m["deletionGracePeriodSeconds"] = grace
                    strategy.mark_deleting(obj)
                    changed = True
                if finalizers != list(m.get("finalizers") or []):
                    m["finalizers"] = finalizers
                    changed = True
                if dry_run or not changed:
                    return obj, False
                try:
                    rev = await self.storage.update(key, encode(obj), kv.mod_revision)
                except st.Conflict:
                    continue
                m["resourceVersion"] = str(rev)
                return obj, False
            if dry_run:
                return obj, True
            try:
                rev, _prev = await self.storage.delete(key, kv.mod_revision)
            except st.Conflict:
                continue
            except st.KeyNotFound:
                raise self._not_found(name) from None
            m["resourceVersion"] = str(rev)
            return obj, True
        raise errors.conflict(self.info.group, self.info.plural, name, "too many concurrent updates")

    # -- watch ----------------------------------------------------------------
    async def watch(self, namespace: str | None, *, pred: Predicate,
                    resource_version: str | None) -> Watcher:
        """A watch served by the watch cache. resourceVersion ""/"0": current state
        as ADDED first (upstream's "get state and start at most recent"), then
        changes; N: changes after N, or 410 Expired when N is older than the cache."""
        parse_rv(resource_version)
        return await self.cache.watch(self.prefix, key_prefix(self.info, namespace), pred, resource_version,
                                      view=self._view if self._convert is not None else None)

    def _typed(self, obj: Obj) -> Obj:
        obj["apiVersion"], obj["kind"] = self.info.api_version, self.info.kind
        return obj

