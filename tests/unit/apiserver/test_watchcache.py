"""The watch cache in front of SQLite storage: one storage watch for many
watchers, replay from the ring, 410 for revisions older than it, selector
transitions, slow watchers dropped, resourceVersion=0 reads, bookmarks."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from kybern.api.catalog import builtin_registry
from kybern.apiserver import watchcache
from kybern.apiserver.store import Predicate, RESTStore
from kybern.apiserver.watchcache import WatchCache
from kybern.machinery import errors
from kybern.storage.sqlite import SQLiteStore


@pytest.fixture
async def env(tmp_path):
    storage = SQLiteStore(str(tmp_path / "state.db"))
    cache = WatchCache(storage)
    reg = builtin_registry()
    cms = RESTStore(reg.get("", "v1", "configmaps"), storage, cache=cache)
    pods = RESTStore(reg.get("", "v1", "pods"), storage, cache=cache)
    await cache.ready()
    yield storage, cache, cms, pods
    await cache.stop()
    await storage.close()


def cm(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": name}}


async def drain(w, timeout: float = 0.2) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of everything the watcher has, until idle."""
    out = []
    while True:
        batch = await w.next_batch(timeout)
        if batch is None or isinstance(batch, str):
            return out
        for typ, entry in batch:
            obj = entry.decode()
            out.append((typ, obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))


async def test_many_watchers_share_one_storage_watch(env):
    storage, _, cms, _ = env
    watchers = [await cms.watch("default", pred=Predicate(), resource_version="0") for _ in range(50)]
    assert len(storage._subs) == 1
    await cms.create("default", cm("a"))
    for w in watchers[:3]:
        assert [t for t, _, _ in await drain(w)] == ["ADDED"]
    for w in watchers:
        w.close()


async def test_watch_replays_from_the_ring_in_revision_order(env):
    _, _, cms, _ = env
    a = await cms.create("default", cm("a"))
    start = a["metadata"]["resourceVersion"]
    await cms.create("default", cm("b"))
    await cms.update("default", "a", lambda cur: {**cur, "data": {"k": "2"}})
    await cms.delete("default", "b")
    await cms.create("other", cm("c"))  # another namespace: not in this watch
    w = await cms.watch("default", pred=Predicate(), resource_version=start)
    evs = await drain(w)
    assert [(t, n) for t, n, _ in evs] == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    rvs = [int(rv) for _, _, rv in evs]
    assert rvs == sorted(rvs) and rvs[0] > int(start)


async def test_a_revision_older_than_the_ring_is_410(env, monkeypatch):
    storage, _, _, _ = env
    monkeypatch.setattr(watchcache, "RING_CAPACITY", 3)
    cache = WatchCache(storage)  # a fresh cache with a tiny ring
    store = RESTStore(builtin_registry().get("", "v1", "configmaps"), storage, cache=cache)
    await cache.ready()
    first = await store.create("default", cm("x0"))
    for i in range(1, 6):
        await store.create("default", cm(f"x{i}"))
    await cache.wait_fresh()
    with pytest.raises(errors.StatusError) as e:
        await store.watch("default", pred=Predicate(), resource_version=first["metadata"]["resourceVersion"])
    assert e.value.code == 410 and "too old resource version" in e.value.status()["message"]
    await cache.stop()


async def test_selector_transitions_are_added_and_deleted(env):
    _, _, cms, _ = env
    await cms.create("default", cm("a", app="web"))
    w = await cms.watch("default", pred=Predicate("app=web"), resource_version="0")
    await cms.update("default", "a", lambda cur: {**cur, "metadata": {**cur["metadata"], "labels": {"app": "db"}}})
    await cms.update("default", "a", lambda cur: {**cur, "metadata": {**cur["metadata"], "labels": {"app": "web"}}})
    await cms.update("default", "a", lambda cur: {**cur, "data": {"k": "v"}})
    await cms.create("default", cm("b", app="db"))
    assert [t for t, _, _ in await drain(w)] == ["ADDED", "DELETED", "ADDED", "MODIFIED"]


async def test_field_selectors_on_indexed_and_other_fields(env):
    _, cache, _, pods = env
    for name, node in (("p1", "n1"), ("p2", "n2")):
        await pods.create("default", {"metadata": {"name": name}, "spec": {
            "nodeName": node, "containers": [{"name": "c", "image": "i"}]}})
    await cache.wait_fresh()  # resourceVersion=0 means "any version": let the cache catch up first
    lst = await pods.list("default", pred=Predicate(None, "spec.nodeName=n2"), resource_version="0")
    assert [p["metadata"]["name"] for p in lst["items"]] == ["p2"]
    lst = await pods.list(None, pred=Predicate(None, "metadata.name!=p1,spec.containers=x"),
                          resource_version="0")
    assert lst["items"] == []  # a non-indexed path is decoded: same answer as storage


async def test_slow_watcher_is_dropped_without_blocking_others(env, monkeypatch):
    _, _, cms, _ = env
    monkeypatch.setattr(watchcache, "WATCHER_BUFFER", 5)
    slow = await cms.watch("default", pred=Predicate(), resource_version="0")
    fast = await cms.watch("default", pred=Predicate(), resource_version="0")
    got = 0
    for i in range(10):
        await cms.create("default", cm(f"n{i}"))
        got += len(await drain(fast, 0.05))
    assert got == 10
    assert await slow.next_batch(0.1) is None  # its stream ends; the client re-watches


async def test_rv0_reads_come_from_the_cache_and_match_storage(env):
    _, cache, cms, _ = env
    for i in range(3):
        await cms.create("default", cm(f"c{i}", app="x"))
    await cache.wait_fresh()
    fresh = await cms.list("default", pred=Predicate("app=x"))
    cached = await cms.list("default", pred=Predicate("app=x"), resource_version="0")
    assert cached["items"] == fresh["items"]
    raw = await cms.list_encoded("default", pred=Predicate("app=x"), resource_version="0")
    assert orjson.loads(raw)["items"] == fresh["items"]
    assert (await cms.get("default", "c1", resource_version="0")) == await cms.get("default", "c1")


async def test_idle_watch_gets_a_bookmark_with_the_progress_revision(env):
    _, cache, cms, pods = env
    w = await cms.watch("default", pred=Predicate(), resource_version="0")
    p = await pods.create("default", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
                                                                                         "image": "i"}]}})
    await cache.wait_fresh()
    rv = await w.next_batch(0.05)
    assert rv == p["metadata"]["resourceVersion"]  # progress from another resource's write


async def test_memory_per_object_is_near_its_json_size(env):
    _, cache, _, _ = env
    import tracemalloc

    pod = {"metadata": {"name": "x", "labels": {"app": "web", "pod-template-hash": "abc"}},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx:1.27",
                                                      "ports": [{"containerPort": 80}]}]},
           "status": {"phase": "Running", "podIP": "10.0.0.1"}}
    rc = cache.resource("/registry/core/pods/")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(500):
        obj = orjson.loads(orjson.dumps(pod))
        obj["metadata"]["name"] = f"p{i:04d}"
        key = f"/registry/core/pods/default/p{i:04d}"
        rc.objects[key] = rc.make_entry(key, obj, 1000 + i)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    json_size = len(rc.objects[key].raw)
    assert used / 500 <= 3 * json_size, (used / 500, json_size)


async def test_initial_state_does_not_count_against_the_buffer(env, monkeypatch):
    _, cache, cms, _ = env
    monkeypatch.setattr(watchcache, "WATCHER_BUFFER", 5)
    for i in range(10):
        await cms.create("default", cm(f"i{i}"))
    await cache.wait_fresh()
    w = await cms.watch("default", pred=Predicate(), resource_version="0")
    await cms.create("default", cm("late"))  # arrives before the client read the 10 ADDED
    evs = await drain(w)
    assert len(evs) == 11 and evs[-1][1] == "late"


async def test_sink_gets_events_as_chunks_while_idle_and_queue_takes_over_when_it_refuses(env):
    """The direct path (watchcache's module doc): while the handler waits, each
    event goes to the sink as one HTTP/1.1 chunk holding one event line; a sink
    that refuses (connection paused) puts events back on the queue, in order."""
    _, cache, cms, _ = env
    w = await cms.watch("default", pred=Predicate(), resource_version="0")
    got: list[bytes] = []
    accept = [True]

    def sink(data: bytes) -> bool:
        if accept[0]:
            got.append(data)
        return accept[0]

    w.sink = sink
    waiting = asyncio.ensure_future(w.next_batch(60))
    await asyncio.sleep(0)
    await cms.create("default", cm("d1"))
    await cms.create("default", cm("d2"))
    await cache.wait_fresh()
    assert not waiting.done()  # events went to the sink without waking the handler
    w.waiter.set_result(None)  # the bookmark interval ends
    assert await waiting == []  # not idle: no bookmark for this interval
    assert w.sent == 2
    lines = []
    for chunk in got:
        size, _, rest = chunk.partition(b"\r\n")
        assert rest.endswith(b"\r\n") and int(size, 16) == len(rest) - 2
        lines.append(rest[:-2])
    events = [orjson.loads(line) for line in lines]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "d1"), ("ADDED", "d2")]
    assert all(line.endswith(b"}\n") and line.count(b"\n") == 1 for line in lines)

    waiting = asyncio.ensure_future(w.next_batch(5))
    await asyncio.sleep(0)
    accept[0] = False
    await cms.create("default", cm("d3"))
    await cms.create("default", cm("d4"))
    batch = await asyncio.wait_for(waiting, 2)  # the refusal wakes the handler
    rest_ = [(t, e.decode()["metadata"]["name"]) for t, e in batch]
    rest_ += [(t, n) for t, n, _ in await drain(w, 0.2)]
    assert rest_ == [("ADDED", "d3"), ("ADDED", "d4")]
    w.close()


async def test_a_burst_reaches_the_sink_as_one_write_with_the_same_bytes(env):
    """Events applied in one event-loop turn (a group commit's rows) go to a
    live watcher's sink as one write: the concatenation of their chunks, in
    revision order, the bytes one write per event gave."""
    _, cache, cms, _ = env
    w = await cms.watch("default", pred=Predicate(), resource_version="0")
    got: list[bytes] = []
    w.sink = lambda data: got.append(data) is None
    waiting = asyncio.ensure_future(w.next_batch(60))
    await asyncio.sleep(0)
    await asyncio.gather(*(cms.create("default", cm(f"b{i}")) for i in range(6)))
    await cache.wait_fresh()
    await asyncio.sleep(0)  # the turn's flush
    rc = cache.resources["/registry/core/configmaps/"]
    events = [ev for ev in rc.ring if ev.entry.key.rsplit("/", 1)[-1].startswith("b")]
    assert len(events) == 6 and w.sent == 6 and not waiting.done()
    assert b"".join(got) == b"".join(ev.chunk("ADDED") for ev in events)
    assert len(got) < 6  # fewer writes than events (one, when the six committed together)
    # events offered in the turn the handler's wait ends go out before it does anything else
    before = len(got)
    w.offer(events[-1])
    w.waiter.set_result(None)
    assert await waiting == [] and len(got) == before + 1 and got[-1] == events[-1].chunk("ADDED")
    await asyncio.sleep(0)
    assert len(got) == before + 1  # the turn's flush found nothing left
    w.close()
