"""The watch cache: the apiserver's in-memory copy of storage, after upstream's
k8s.io/apiserver/pkg/storage/cacher.

ONE storage watch on `/registry/` feeds every resource's cache, so N watchers
cost one storage watch, and each change is decoded and encoded once however many
watchers receive it. Per resource prefix (`/registry/<group>/<plural>/`) it keeps
  - the current objects, as encoded JSON bytes ready to send (resourceVersion
    filled in) plus the few decoded fields selectors need (labels, and the
    commonly selected fields of the kind), not as full dicts: memory stays near
    the JSON size;
  - a bounded ring of recent events, so a watch from a recent resourceVersion
    is replayed from memory; one older than the ring is 410 Expired ("too old
    resource version"), as upstream.
Watches, `resourceVersion=0` lists and gets, and bookmarks (progress: the
latest revision the cache has seen) are served from here; plain lists and gets
stay consistent reads from storage, as upstream's default.

A slow watcher whose buffer fills is dropped (its stream ends and the client
re-watches from its last resourceVersion) rather than holding up the others.
Events reach each watcher in revision order.

Fan-out: a watcher may carry a `sink` (the HTTP handler's direct write to its
connection). While the watcher is idle and caught up, its events go to its
outbox, and once per event-loop turn (a callback scheduled by the turn's first
event) each outbox goes to its sink as one write, instead of queueing each
event and waking one coroutine per watcher; the event is framed once for all
of them. A burst (a group commit's rows, a poll's rows from the other
processes) thus costs each watcher one TLS record and one send(), not one per
event; the bytes on the wire are the same, in the same order. A sink that
cannot take bytes now (the connection's write buffer is full, or it is closing)
puts the watcher back on the queue-and-wake path, whose handler waits for the
buffer to drain and drops the watcher when WATCHER_BUFFER events pile up.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from kybern.machinery import errors, selectors
from kybern.storage import interface as st

if TYPE_CHECKING:
    from kybern.apiserver.store import Predicate

log = logging.getLogger(__name__)

ROOT = "/registry/"
RING_CAPACITY = 4096  # recent events kept per resource for watch resumption
WATCHER_BUFFER = 2048  # undelivered events per watcher before it is dropped as too slow

# fields kept decoded per kind so field selectors need not decode the JSON; any
# other field path still works, by decoding the stored bytes (slower, same answer)
INDEXED_FIELDS: dict[str, tuple[str, ...]] = {
    "/registry/core/pods/": ("spec.nodeName", "status.phase", "spec.schedulerName",
                             "spec.restartPolicy", "spec.serviceAccountName", "status.podIP",
                             "status.nominatedNodeName"),
    "/registry/core/events/": ("involvedObject.kind", "involvedObject.name", "involvedObject.namespace",
                               "involvedObject.uid", "reason", "type"),
    "/registry/core/secrets/": ("type",),
    "/registry/core/nodes/": ("spec.unschedulable",),
    "/registry/core/namespaces/": ("status.phase",),
}


class Entry:
    """One object version: its wire bytes and what selectors look at."""

    __slots__ = ("fields", "key", "labels", "raw", "rv")

    def __init__(self, key: str, rv: int, raw: bytes, labels: dict[str, str] | None,
                 fields: tuple[str, ...]) -> None:
        self.key = key
        self.rv = rv
        self.raw = raw  # the object's JSON, metadata.resourceVersion included
        self.labels = labels
        self.fields = fields

    def decode(self) -> dict[str, Any]:
        obj: dict[str, Any] = orjson.loads(self.raw)
        return obj

    def line(self, typ: str) -> bytes:
        """The watch event line for this object."""
        return b'{"type":"' + typ.encode() + b'","object":' + self.raw + b"}\n"


class Event:
    __slots__ = ("chunks", "deleted", "entry", "prev", "rv")

    def __init__(self, rv: int, entry: Entry, prev: Entry | None, deleted: bool) -> None:
        self.rv = rv
        self.entry = entry  # for a delete: the last state, resourceVersion = the delete's revision
        self.prev = prev
        self.deleted = deleted
        self.chunks: dict[str, bytes] | None = None

    def chunk(self, typ: str) -> bytes:
        """The event line as one HTTP/1.1 chunk (size, CRLF, line, CRLF), built
        once per type and shared by every watcher that gets it as that type."""
        chunks = self.chunks
        if chunks is None:
            chunks = self.chunks = {}
        data = chunks.get(typ)
        if data is None:
            line = self.entry.line(typ)
            data = chunks[typ] = b"%x\r\n%b\r\n" % (len(line), line)
        return data


class ResourceCache:
    """The current objects and recent events under one resource prefix."""

    def __init__(self, prefix: str, start_rv: int) -> None:
        self.prefix = prefix
        self.objects: dict[str, Entry] = {}
        self.ring: deque[Event] = deque(maxlen=RING_CAPACITY)
        self.start_rv = start_rv  # every event after this revision is in the ring
        self.watchers: set[Watcher] = set()
        # in-process indexes following each event (nodegraph.py): called with (self, event)
        self.listeners: list[Callable[[ResourceCache, Event], None]] = []
        self.indexed = INDEXED_FIELDS.get(prefix, ())
        self._field_index = {p: i for i, p in enumerate(self.indexed)}
        self._paths = [tuple(p.split(".")) for p in self.indexed]
        self._label_sets: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}

    # -- entries ----------------------------------------------------------------
    def make_entry(self, key: str, obj: dict[str, Any], rv: int) -> Entry:
        m = obj.setdefault("metadata", {})
        m["resourceVersion"] = str(rv)
        labels, fields = self.selectable(obj)
        # orjson hands back bytes in an over-sized buffer (up to 4x): keep an exact copy
        return Entry(key, rv, bytes(memoryview(orjson.dumps(obj))), labels, fields)

    def selectable(self, obj: dict[str, Any]) -> tuple[dict[str, str] | None, tuple[str, ...]]:
        """What an entry keeps of an object for selectors: its labels (one dict
        per distinct label set) and the indexed fields' values."""
        labels = obj["metadata"].get("labels") or None
        if labels:
            # pods of one owner share a label set: keep one dict for all of them
            sig = tuple(labels.items())
            shared = self._label_sets.get(sig)
            if shared is None:
                if len(self._label_sets) > 50_000:
                    self._label_sets.clear()
                shared = {sys.intern(k): sys.intern(v) if isinstance(v, str) else v for k, v in labels.items()}
                self._label_sets[sig] = shared
            labels = shared
        if not self._paths:
            return labels, ()
        return labels, tuple([sys.intern(selectors.field_value_at(obj, parts)) for parts in self._paths])

    def field(self, entry: Entry, path: str) -> str:
        rest = entry.key[len(self.prefix):]
        if path == "metadata.name":
            return rest.rsplit("/", 1)[-1]
        if path == "metadata.namespace":
            return rest.split("/", 1)[0] if "/" in rest else ""
        i = self._field_index.get(path)
        if i is not None:
            return entry.fields[i]
        return selectors.field_value(entry.decode(), path)

    def matches(self, entry: Entry, pred: Predicate) -> bool:
        if pred.labels and not selectors.matches(pred.labels, entry.labels):
            return False
        for path, op, want in pred.fields:
            if (self.field(entry, path) == want) != (op == "="):
                return False
        return True

    def snapshot(self, key_prefix: str, pred: Predicate) -> list[Entry]:
        """Current objects under key_prefix that match, in key order (as storage lists)."""
        out = [e for k, e in self.objects.items() if k.startswith(key_prefix)
               and (pred.empty or self.matches(e, pred))]
        out.sort(key=lambda e: e.key)
        return out

    # -- events -----------------------------------------------------------------
    def add(self, ev: Event) -> None:
        if len(self.ring) == self.ring.maxlen:
            self.start_rv = self.ring[0].rv
        self.ring.append(ev)
        for f in self.listeners:
            f(self, ev)
        for w in self.watchers:
            w.offer(ev)


class Watcher:
    """One client's watch: a buffer the cache fills and the HTTP handler drains."""

    __slots__ = (
        "__weakref__",
        "cache",
        "closed",
        "dropped",
        "initial",
        "key_prefix",
        "live",
        "min_rv",
        "outbox",
        "pending",
        "pred",
        "rc",
        "sent",
        "sink",
        "view",
        "waiter",
    )

    def __init__(self, cache: WatchCache, rc: ResourceCache, key_prefix: str, pred: Predicate,
                 min_rv: int, view: Callable[[Entry], Entry] | None = None) -> None:
        self.view = view  # converts entries for a store served at another version than storage's
        self.cache = cache
        self.rc = rc
        self.key_prefix = key_prefix
        self.pred = pred
        self.min_rv = min_rv
        self.pending: deque[tuple[str, Entry]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.dropped = False
        self.closed = False
        self.initial = 0  # replayed/initial events queued at start: not counted against the buffer
        # sink(chunk) -> bool: writes one framed event to the client now, False if it
        # cannot (see the module doc). Only for watches sent as the cache's bytes.
        self.sink: Callable[[bytes], bool] | None = None
        self.live = False  # events go to the sink: set while the handler waits with nothing queued
        self.sent = 0  # events handed to the sink
        # events for the sink this turn (type, entry, framed chunk), written by flush()
        self.outbox: list[tuple[str, Entry, bytes]] = []

    def _classify(self, ev: Event) -> str | None:
        if ev.rv <= self.min_rv or not ev.entry.key.startswith(self.key_prefix):
            return None
        pred = self.pred
        if pred.empty:
            return "DELETED" if ev.deleted else "ADDED" if ev.prev is None else "MODIFIED"
        rc = self.rc
        if ev.deleted:
            return "DELETED" if rc.matches(ev.entry, pred) else None
        cur = rc.matches(ev.entry, pred)
        if ev.prev is None:
            return "ADDED" if cur else None
        was = rc.matches(ev.prev, pred)
        # an object entering or leaving the selector is ADDED / DELETED, as upstream
        return ("MODIFIED" if was else "ADDED") if cur else ("DELETED" if was else None)

    def offer(self, ev: Event) -> None:
        if self.dropped:
            return
        typ = self._classify(ev)
        if typ is None:
            return
        if self.live:
            if not self.outbox:
                self.cache.flush_later(self)
            self.outbox.append((typ, ev.entry, ev.chunk(typ)))
            return
        self._queue(typ, ev.entry)
        self._wake()

    def _queue(self, typ: str, entry: Entry) -> None:
        if self.dropped:
            return
        if len(self.pending) >= WATCHER_BUFFER + self.initial:
            self.dropped = True  # too slow: end its stream rather than block the others
            self.pending.clear()
            log.info("watcher on %s fell %d events behind; closing it", self.key_prefix, WATCHER_BUFFER)
        else:
            self.pending.append((typ, entry))

    def flush(self) -> None:
        """The outbox to the sink in one write; if the connection cannot take it
        now, its events are queued for the handler instead (in order, before any
        later one: events reach the outbox only while `live`)."""
        out = self.outbox
        if not out:
            return
        self.outbox = []
        if self.dropped:
            return
        try:
            ok = self.sink(out[0][2] if len(out) == 1 else b"".join([c for _, _, c in out]))  # type: ignore[misc]
        except Exception:  # a broken connection must not stop the fan-out to the others
            log.debug("watch sink failed; ending the watch", exc_info=True)
            self.live = False
            self.dropped = True
            self._wake()
            return
        if ok:
            self.sent += len(out)
            return
        self.live = False  # the connection cannot take it now: queue them, the handler drains
        for typ, entry, _ in out:
            self._queue(typ, entry)
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def next_batch(self, timeout: float) -> list[tuple[str, Entry]] | str | None:
        """Everything queued (in order); after `timeout` idle seconds a progress
        resourceVersion (a bookmark); None when the stream is over. With a sink,
        events arriving during the wait go straight to it, and the wait ends only
        at `timeout` (an empty list if events were sent meanwhile, so not idle),
        when the sink could not take one, or when the watch ends."""
        if not self.pending and not self.dropped and not self.closed:
            # a bare future and a timer: wait_for() would cost a task per wait
            loop = asyncio.get_running_loop()
            self.waiter = fut = loop.create_future()
            timer = loop.call_later(timeout, _expire, fut)
            sent = self.sent
            self.live = self.sink is not None
            try:
                await fut
            finally:
                self.live = False
                self.flush()  # what this turn offered goes out before the handler writes anything
                timer.cancel()
                self.waiter = None
            if not self.pending and not self.dropped and not self.closed:
                if self.sent != sent:
                    return []
                # nothing is buffered, so every change up to the cache's revision was sent
                return str(max(self.cache.rv, self.min_rv))
        if self.dropped or (self.closed and not self.pending):
            return None
        out = list(self.pending)
        self.pending.clear()
        self.initial = 0
        if self.view is not None:
            out = [(t, self.view(e)) for t, e in out]
        return out

    def close(self) -> None:
        self.closed = True
        self.rc.watchers.discard(self)
        self._wake()


class _Expected:
    """A local write's parts, for WatchCache.expect()."""

    __slots__ = ("enc", "fields", "labels")

    def __init__(self, enc: Any, labels: dict[str, str] | None, fields: tuple[str, ...]) -> None:
        self.enc, self.labels, self.fields = enc, labels, fields


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class WatchCache:
    """Every resource's cache, fed by one storage watch."""

    _by_storage: ClassVar[weakref.WeakKeyDictionary[Any, WatchCache]] = weakref.WeakKeyDictionary()

    def __init__(self, storage: st.Store, *, root: str = ROOT) -> None:
        self.storage = storage
        self.root = root
        self.rv = 0  # the latest revision applied (progress)
        self.resources: dict[str, ResourceCache] = {}
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0
        self._gap_rv = self._gap_seen = 0
        # key -> a write this process is making (see expect())
        self._expected: dict[str, _Expected] = {}
        self._outboxes: list[Watcher] = []  # watchers with events for their sinks this turn
        self._flushing: asyncio.Handle | None = None

    @classmethod
    def for_storage(cls, storage: st.Store) -> WatchCache:
        """The one cache of a storage object (created on first use)."""
        try:
            c = cls._by_storage.get(storage)
        except TypeError:  # not weak-referenceable
            c = None
        if c is None:
            c = cls(storage)
            try:
                cls._by_storage[storage] = c
            except TypeError:
                pass
        return c

    def flush_later(self, w: Watcher) -> None:
        """Write `w`'s outbox at the end of this event-loop turn (with every other
        watcher's): the events a turn applies go out together."""
        self._outboxes.append(w)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().call_soon(self._flush_outboxes)

    def _flush_outboxes(self) -> None:
        self._flushing = None
        ws, self._outboxes = self._outboxes, []
        for w in ws:
            w.flush()

    # -- lifecycle --------------------------------------------------------------
    def is_ready(self) -> bool:
        """Whether the cache holds storage's objects (it has listed them and is following)."""
        return self._ready.is_set() and self._task is not None and not self._task.done()

    async def ready(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="watch-cache")
        await self._ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for rc in self.resources.values():
            for w in list(rc.watchers):
                w.close()

    async def _run(self) -> None:
        while True:
            try:
                res = await self.storage.list(self.root)
                self._reset(res)
                self._ready.set()
                async for ev in self.storage.watch(self.root, res.revision):
                    self._apply(ev)
                log.warning("watch cache: storage watch ended (fell behind?); re-listing")
            except asyncio.CancelledError:
                raise
            except Exception:  # keep serving; the next round re-lists
                log.exception("watch cache: storage watch failed; re-listing")
                await asyncio.sleep(1)
            self.restarts += 1

    def _reset(self, res: st.ListResult) -> None:
        for rc in self.resources.values():  # watchers cannot be resumed across a re-list
            for w in list(rc.watchers):
                w.dropped = True
                w.close()
        self.resources = {}
        self.rv = res.revision
        for kv in res.kvs:
            rc = self._resource_for_key(kv.key)
            if rc is not None:
                rc.objects[kv.key] = rc.make_entry(kv.key, orjson.loads(kv.value), kv.mod_revision)

    def _resource_for_key(self, key: str) -> ResourceCache | None:
        if not key.startswith(self.root):
            return None
        parts = key.split("/", 4)  # "", "registry", group, plural, rest
        if len(parts) < 5:
            return None
        return self.resource(f"/{parts[1]}/{parts[2]}/{parts[3]}/")

    def resource(self, prefix: str) -> ResourceCache:
        rc = self.resources.get(prefix)
        if rc is None:
            # the cache has seen every change since it (re)started, so a new prefix is complete from there
            rc = self.resources[prefix] = ResourceCache(prefix, self._start_rv())
        return rc

    def _start_rv(self) -> int:
        return self.rv

    def expect(self, prefix: str, key: str, enc: Any, obj: dict[str, Any]) -> None:
        """A write of `enc.value` (a store.Encoded of `obj`) to `key` is about to
        be made through this process: when its event arrives carrying that very
        bytes object, the entry is spliced from the parts (`enc.wire(rev)`, the
        same bytes as decoding the value and encoding it with its revision) and
        the selector fields taken from `obj` now, instead of a decode and an
        encode. Any other event for the key (another process's write, a failed
        write's key written later) is applied the usual way."""
        if len(self._expected) > 1024:  # failed writes leave theirs: never let them pile up
            self._expected.clear()
        labels, fields = self.resource(prefix).selectable(obj)
        self._expected[key] = _Expected(enc, labels, fields)

    def _apply(self, ev: st.Event) -> None:
        key = ev.kv.key
        rev = ev.kv.mod_revision
        rc = self._resource_for_key(key)
        if rc is not None:
            old = rc.objects.get(key)
            hint = self._expected.pop(key, None) if self._expected else None
            if ev.type == "DELETE":
                rc.objects.pop(key, None)
                if old is not None:
                    gone = rc.make_entry(key, old.decode(), rev)
                else:
                    gone = rc.make_entry(key, orjson.loads(ev.kv.value or b"{}"), rev)
                rc.add(Event(rev, gone, old, True))
            else:
                if hint is not None and hint.enc.value is ev.kv.value:
                    new = Entry(key, rev, hint.enc.wire(rev), hint.labels, hint.fields)
                else:
                    new = rc.make_entry(key, orjson.loads(ev.kv.value), rev)
                rc.objects[key] = new
                rc.add(Event(rev, new, None if ev.created else old, False))
        self.rv = max(self.rv, rev)

    # -- serving ----------------------------------------------------------------
    async def watch(self, prefix: str, key_prefix: str, pred: Predicate,
                    resource_version: str | None, view: Callable[[Entry], Entry] | None = None) -> Watcher:
        """A watcher positioned at resource_version. ""/"0": the current state first
        as ADDED events. N: the events after N, replayed from the ring; a revision
        older than the ring is 410 Expired."""
        await self.ready()
        if resource_version in (None, "", "0"):
            if resource_version != "0":
                await self.wait_fresh()
            rc = self.resource(prefix)
            w = Watcher(self, rc, key_prefix, pred, self.rv, view)
            w.pending.extend(("ADDED", e) for e in rc.snapshot(key_prefix, pred))
            w.initial = len(w.pending)
        else:
            rv = int(resource_version)
            rc = self.resource(prefix)
            if rv < rc.start_rv:
                raise errors.resource_expired(f"{rv} ({rc.start_rv})")
            w = Watcher(self, rc, key_prefix, pred, rv, view)
            for ev in rc.ring:  # replay; the live feed below continues exactly after it
                if ev.rv > rv:
                    typ = w._classify(ev)
                    if typ is not None:
                        w.pending.append((typ, ev.entry))
            w.initial = len(w.pending)
        rc.watchers.add(w)
        return w

    async def wait_fresh(self, timeout: float = 1.0) -> bool:
        """Wait until the cache has applied everything storage had when called
        (upstream's consistent reads from cache); False if that did not happen
        within `timeout` (the caller then reads storage). A revision that never
        becomes an event (SQLite's compaction bookkeeping row) is remembered
        after one timeout, so it does not stall every later read."""
        await self.ready()
        want = await self.storage.current_revision()
        if self.rv >= want or (want == self._gap_rv and self.rv >= self._gap_seen):
            return True
        deadline = asyncio.get_running_loop().time() + timeout
        while self.rv < want:
            if asyncio.get_running_loop().time() >= deadline:
                self._gap_rv, self._gap_seen = want, self.rv
                return False
            await asyncio.sleep(0.001)
        return True

    async def list(self, prefix: str, key_prefix: str, pred: Predicate) -> tuple[list[Entry], int]:
        await self.ready()
        return self.resource(prefix).snapshot(key_prefix, pred), self.rv

    async def get(self, prefix: str, key: str) -> Entry | None:
        await self.ready()
        return self.resource(prefix).objects.get(key)

    def counts(self) -> dict[str, int]:
        """Objects per resource prefix (apiserver_storage_objects)."""
        return {p: len(rc.objects) for p, rc in self.resources.items()}

    def watcher_count(self) -> int:
        return sum(len(rc.watchers) for rc in self.resources.values())
