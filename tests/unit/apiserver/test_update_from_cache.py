"""Updates start from the watch cache's copy of the object (as upstream's cacher
hands its object to GuaranteedUpdate) and read storage only when that copy
turns out stale: the answers are those of a storage read, whatever the cache
has not applied yet (another process's write), preconditions included."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from kybern.api.catalog import builtin_registry
from kybern.apiserver.store import RESTStore
from kybern.apiserver.watchcache import WatchCache
from kybern.machinery import errors
from kybern.machinery import patch as patching
from kybern.storage.sqlite import SQLiteStore

REG = builtin_registry()
KEY = "/registry/core/pods/default/p"


class CountingStore(SQLiteStore):
    gets = 0

    async def get(self, key):  # type: ignore[no-untyped-def]
        self.gets += 1
        return await super().get(key)


@pytest.fixture
async def env(tmp_path):
    storage = CountingStore(str(tmp_path / "state.db"))
    cache = WatchCache(storage)
    await cache.ready()
    store = RESTStore(REG.get("", "v1", "pods"), storage, cache=cache)  # type: ignore[arg-type]
    other = SQLiteStore(str(tmp_path / "state.db"))  # another apiserver process on the same file
    await store.create("default", {"metadata": {"name": "p", "labels": {"a": "1"}},
                                   "spec": {"containers": [{"name": "c", "image": "i"}]}})
    await _settle(cache, storage)
    yield storage, cache, store, other
    await other.close()
    await cache.stop()
    await storage.close()


async def _settle(cache: WatchCache, storage: SQLiteStore) -> None:
    want = await storage.current_revision()
    for _ in range(3000):
        if cache.rv >= want:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the cache did not catch up")


def _labels(**labels: str):  # type: ignore[no-untyped-def]
    return lambda cur: patching.merge_patch(cur, {"metadata": {"labels": labels}}, owned=True)


async def _write_elsewhere(other: SQLiteStore, label: str) -> int:
    kv, _ = await other.get(KEY)
    obj = orjson.loads(kv.value)
    obj["metadata"]["labels"]["b"] = label
    return await other.update(KEY, orjson.dumps(obj), kv.mod_revision)


async def test_a_current_cache_entry_saves_the_storage_read(env):
    storage, _cache, store, _ = env
    storage.gets = 0
    obj, _, wire = await store.update_wire("default", "p", _labels(x="1"))
    assert storage.gets == 0 and obj["metadata"]["labels"] == {"a": "1", "x": "1"}
    assert wire == orjson.dumps(await store.get("default", "p"))


async def test_a_stale_entry_retries_from_storage(env):
    _storage, cache, store, other = env
    stale = cache.resources["/registry/core/pods/"].objects[KEY].rv
    rev = await _write_elsewhere(other, "elsewhere")
    assert cache.resources["/registry/core/pods/"].objects[KEY].rv == stale < rev  # not applied yet
    obj, _, wire = await store.update_wire("default", "p", _labels(x="1"))
    # the other process's label is kept: the update was made on what storage holds
    assert obj["metadata"]["labels"] == {"a": "1", "b": "elsewhere", "x": "1"}
    assert int(obj["metadata"]["resourceVersion"]) > rev
    assert wire == orjson.dumps(await store.get("default", "p"))


async def test_preconditions_are_checked_against_storage(env):
    _storage, cache, store, other = env
    stale = str(cache.resources["/registry/core/pods/"].objects[KEY].rv)
    rev = await _write_elsewhere(other, "1")

    def put(rv: str):  # type: ignore[no-untyped-def]
        def make(cur):  # type: ignore[no-untyped-def]
            cur["metadata"]["resourceVersion"] = rv
            cur["metadata"]["labels"]["put"] = rv
            return cur
        return make
    # the revision storage holds (the cache does not know it yet) is current: no 409
    obj, _ = await store.update("default", "p", put(str(rev)))
    assert obj["metadata"]["labels"]["put"] == str(rev) and obj["metadata"]["labels"]["b"] == "1"
    await _write_elsewhere(other, "2")
    # the cache's revision is not current any more: 409, as a storage read gives
    with pytest.raises(errors.StatusError) as e:
        await store.update("default", "p", put(stale))
    assert e.value.code == 409


async def test_an_error_on_a_stale_entry_is_checked_against_storage(env):
    storage, cache, store, other = env
    await _write_elsewhere(other, "go")

    def only_if_b(cur):  # type: ignore[no-untyped-def]
        if cur["metadata"]["labels"].get("b") != "go":
            raise errors.conflict("", "pods", "p", "not yet")
        cur["metadata"]["labels"]["seen"] = "yes"
        return cur
    obj, _ = await store.update("default", "p", only_if_b)  # refused on the cache's copy, not on storage's
    assert obj["metadata"]["labels"]["seen"] == "yes"
    # an error on a current entry stands, with one cheap revision check
    await _settle(cache, storage)
    with pytest.raises(errors.StatusError) as e:
        await store.update("default", "p", lambda cur: (_ for _ in ()).throw(errors.conflict("", "pods", "p", "no")))
    assert e.value.code == 409


async def test_no_change_answers_what_storage_holds(env):
    _storage, _cache, store, other = env
    rev = await _write_elsewhere(other, "new")
    obj, _, wire = await store.update_wire("default", "p", lambda cur: cur)
    assert wire is None and obj["metadata"]["resourceVersion"] == str(rev) and obj["metadata"]["labels"]["b"] == "new"


async def test_a_deleted_object_is_not_found(env):
    _storage, _cache, store, other = env
    kv, _ = await other.get(KEY)
    await other.delete(KEY, kv.mod_revision)
    with pytest.raises(errors.StatusError) as e:
        await store.update("default", "p", _labels(x="1"))
    assert e.value.code == 404
