"""Responses and watch-cache entries spliced from stored bytes must be the bytes
the decode-and-encode path gives: create answers, GETs served from the cache's
bytes, the cache's entries of this process's own writes, and another
process's writes to the same file."""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from kybern.api.catalog import builtin_registry
from kybern.apiserver.store import Encoded, RESTStore, decode, encode
from kybern.apiserver.watchcache import WatchCache
from kybern.storage.interface import KV
from kybern.storage.sqlite import SQLiteStore

REG = builtin_registry()


def _random_obj(rng: random.Random) -> dict:
    def val(depth: int) -> object:
        r = rng.random()
        if depth > 2 or r < 0.4:
            return rng.choice(["", "x", 'q"uote\\', "é", 0, 7, 1.5, True, None, -3])
        if r < 0.7:
            return {rng.choice(["a", "b", "metadata", "resourceVersion", "c\"d"]): val(depth + 1)
                    for _ in range(rng.randint(0, 3))}
        return [val(depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["apiVersion", "kind", "metadata", "spec", "status", "data"]
    rng.shuffle(keys)
    obj: dict = {}
    for k in keys[:rng.randint(1, len(keys))]:
        obj[k] = val(0)
    m = {k: val(1) for k in rng.sample(["name", "labels", "uid", "annotations", "x"], rng.randint(0, 4))}
    obj["metadata"] = m  # (re)placed at a random position among the keys
    if rng.random() < 0.5:
        obj = {k: obj[k] for k in rng.sample(list(obj), len(obj))}
    return obj


def test_encoded_parts_are_the_stored_bytes_and_wire_is_decode_then_dumps():
    rng = random.Random(3)
    for _ in range(3000):
        obj = _random_obj(rng)
        enc = Encoded(obj)
        assert enc.value == encode(obj) == orjson.dumps(obj)
        rev = rng.randint(1, 10**12)
        assert enc.wire(rev) == orjson.dumps(decode(KV("/k", enc.value, 1, rev)))


@pytest.fixture
async def server(tmp_path):
    storage = SQLiteStore(str(tmp_path / "state.db"))
    cache = WatchCache(storage)
    await cache.ready()
    info = REG.get("", "v1", "pods")
    assert info is not None
    store = RESTStore(info, storage, cache=cache)
    yield storage, cache, store
    await cache.stop()
    await storage.close()


async def _settle(cache: WatchCache, storage: SQLiteStore) -> None:
    want = await storage.current_revision()
    for _ in range(2000):
        if cache.rv >= want:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the cache did not catch up")


def _pod(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels or {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "N", "value": name}]}],
                     "nodeName": "n1"}}


async def test_create_answer_cache_entry_and_get_are_the_decoded_bytes(server):
    storage, cache, store = server
    for i in range(20):
        obj, wire = await store.create_wire("default", _pod(f"p{i}", tier=str(i % 3)))
        assert wire == orjson.dumps(obj)
        await _settle(cache, storage)
        key = f"/registry/core/pods/default/p{i}"
        kv, _ = await storage.get(key)
        entry = cache.resources["/registry/core/pods/"].objects[key]
        rc = cache.resources["/registry/core/pods/"]
        assert entry.raw == orjson.dumps(decode(kv)) == wire
        # the selector data is what a decode of the stored bytes gives
        fresh = rc.make_entry(key, orjson.loads(kv.value), kv.mod_revision)
        assert (entry.labels, entry.fields, entry.rv) == (fresh.labels, fresh.fields, fresh.rv)
        # GET: the cache's bytes, equal to get() encoded
        assert await store.get_encoded("default", f"p{i}") == orjson.dumps(await store.get("default", f"p{i}"))
    # dry run: no stored bytes, no wire
    obj, wire = await store.create_wire("default", _pod("dry"), dry_run=True)
    assert wire is None


async def test_get_encoded_without_a_cache_entry_reads_storage(server, tmp_path):
    storage, cache, store = server
    await store.create("default", _pod("a"))
    await _settle(cache, storage)
    key = "/registry/core/pods/default/a"
    # another process writes the same file: this cache has not applied it yet
    other = SQLiteStore(str(tmp_path / "state.db"))
    kv, _ = await other.get(key)
    rev = await other.update(key, kv.value.replace(b'"n1"', b'"n2"'), kv.mod_revision)
    stale = cache.resources["/registry/core/pods/"].objects[key]
    assert stale.rv < rev
    got = await store.get_encoded("default", "a")
    assert got == orjson.dumps(await store.get("default", "a")) and b'"n2"' in got
    # and once the cache has it, its entry is the same bytes again
    await _settle(cache, storage)
    entry = cache.resources["/registry/core/pods/"].objects[key]
    assert entry.rv == rev and entry.raw == got == await store.get_encoded("default", "a")
    await other.close()


async def test_update_answer_and_cache_entry_are_the_decoded_bytes(server):
    """PUT/PATCH/status answers are spliced from the stored parts too: the bytes
    json_response(obj) gave, the same as a GET of that revision, and the cache's
    entry of this process's update is those bytes with the object's selector data."""
    from kybern.machinery import patch as patching

    storage, cache, store = server
    rng = random.Random(5)
    for i in range(6):
        await store.create("default", _pod(f"u{i}"))
    for n in range(60):
        name = f"u{rng.randrange(6)}"
        kind = rng.choice(["status", "labels", "put"])
        if kind == "status":
            body = {"status": {"phase": rng.choice(["Running", "Pending"]), "podIP": f"10.0.0.{n}",
                               "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None}]}}
            obj, created, wire = await store.update_wire(
                "default", name, lambda cur, b=body: patching.merge_patch(cur, b, owned=True), subresource="status")
        elif kind == "labels":
            body = {"metadata": {"labels": {"n": str(n)}, "annotations": {"a": 'q"' + str(n)}}}
            obj, created, wire = await store.update_wire(
                "default", name, lambda cur, b=body: patching.merge_patch(cur, b, owned=True))
        else:
            def put(cur: dict) -> dict:
                cur["metadata"]["labels"] = {"put": str(n)}  # noqa: B023
                return cur
            obj, created, wire = await store.update_wire("default", name, put)
        assert not created and wire is not None
        assert wire == orjson.dumps(obj)
        await _settle(cache, storage)
        key = f"/registry/core/pods/default/{name}"
        kv, _ = await storage.get(key)
        assert wire == orjson.dumps(decode(kv)) == await store.get_encoded("default", name)
        rc = cache.resources["/registry/core/pods/"]
        entry = rc.objects[key]
        fresh = rc.make_entry(key, orjson.loads(kv.value), kv.mod_revision)
        assert (entry.raw, entry.labels, entry.fields, entry.rv) == (fresh.raw, fresh.labels, fresh.fields, fresh.rv)
    # no change, dry run: nothing written, no spliced bytes (the handler encodes obj)
    obj, _, wire = await store.update_wire("default", "u0", lambda cur: cur)
    assert wire is None
    obj, _, wire = await store.update_wire(
        "default", "u0", lambda cur: {**cur, "metadata": {**cur["metadata"], "labels": {"dry": "run"}}}, dry_run=True)
    assert wire is None


def test_status_update_copy_keeps_key_order_and_values():
    """prepare_for_status_update: old with new's status, in old's key order, as
    copy.deepcopy(old) then setting status gave; old is left as it was."""
    import copy

    from kybern.api.strategy import Strategy

    class WithStatus(Strategy):
        has_status = True

    s = WithStatus()
    rng = random.Random(9)
    for _ in range(2000):
        old = _random_obj(rng)
        new = _random_obj(rng)
        old.setdefault("metadata", {})
        if rng.random() < 0.3:
            new.pop("status", None)
        want = copy.deepcopy(old)
        if "status" in new:
            want["status"] = new["status"]
        else:
            want.pop("status", None)
        want["metadata"]["resourceVersion"] = new.get("metadata", {}).get("resourceVersion")
        before = orjson.dumps(old)
        got = s.prepare_for_status_update(new, old)
        assert orjson.dumps(got) == orjson.dumps(want)
        assert orjson.dumps(old) == before
        assert got["metadata"] is not old["metadata"]


def test_drop_nulls_is_the_full_walk():
    from kybern.apiserver.store import _drop_null_values, _drop_nulls

    rng = random.Random(4)
    for _ in range(3000):
        obj = _random_obj(rng)
        want = orjson.loads(orjson.dumps(obj))
        _drop_null_values(want)
        _drop_nulls(obj)
        assert orjson.dumps(obj) == orjson.dumps(want)
