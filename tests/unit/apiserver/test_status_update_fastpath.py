"""A status update validates only status and metadata (the rest is the stored
object's) and drops only its status's nulls: the same answers, stored bytes,
errors and warnings as the whole-object path (schema check of everything, every
null dropped) for random status bodies, merge patches and PUTs alike."""

from __future__ import annotations

import copy
import random

import orjson
import pytest

from kybern.api.catalog import builtin_registry
from kybern.apiserver.server import _validator
from kybern.apiserver.store import RESTStore, _drop_nulls
from kybern.apiserver.watchcache import WatchCache
from kybern.machinery import errors, managedfields
from kybern.machinery import patch as patching
from kybern.storage.sqlite import SQLiteStore

REG = builtin_registry()
SCOPE = ("apiVersion", "kind", "metadata", "status")


def _status(rng: random.Random) -> dict:
    st: dict = {"phase": rng.choice(["Running", "Pending", None, 7, "Bogus"]),
                "conditions": [{"type": t, "status": rng.choice(["True", "False"]), "lastProbeTime": None,
                                "lastTransitionTime": rng.choice(["2026-11-22T20:00:00Z", None])}
                               for t in rng.sample(["Ready", "Initialized", "PodScheduled"], rng.randint(0, 3))],
                "podIP": rng.choice(["10.0.0.1", None]), "podIPs": [{"ip": "10.0.0.1"}],
                "containerStatuses": [{"name": "c", "ready": rng.choice([True, False, "yes"]),
                                       "restartCount": rng.choice([0, 3, -1, 1.5]), "image": "i", "imageID": "",
                                       "state": {"running": {"startedAt": None}}, "lastState": {}}]}
    if rng.random() < 0.2:
        st["unknownField"] = {"x": None}
    if rng.random() < 0.1:
        st["containerStatuses"][0]["bogus"] = 1
    return {k: v for k, v in st.items() if rng.random() < 0.85}


def _body(rng: random.Random, cur_rv: str) -> dict:
    body: dict = {"status": _status(rng) if rng.random() < 0.95 else None}
    r = rng.random()
    if r < 0.15:
        body["spec"] = {"nodeName": None, "bogus": 1}  # ignored by a status update
    elif r < 0.3:
        body["metadata"] = {"labels": {"x": None}, "resourceVersion": rng.choice([None, cur_rv, "1"])}
    elif r < 0.35:
        body["metadata"] = None
    return body


@pytest.fixture
async def stores(tmp_path):
    info = REG.get("", "v1", "pods")
    out = []
    for i, scope in enumerate((SCOPE, None)):
        storage = SQLiteStore(str(tmp_path / f"s{i}.db"))
        cache = WatchCache(storage)
        await cache.ready()
        out.append((storage, cache, RESTStore(info, storage, validator=_validator(), cache=cache,
                                              track_fields=managedfields.tracker(info), status_scope=scope)))
    yield out
    for storage, cache, _ in out:
        await cache.stop()
        await storage.close()


def _full_null_drop(fn):  # type: ignore[no-untyped-def]
    """The earlier path: every null of the changed object dropped before the status update sees it."""
    def make(cur):  # type: ignore[no-untyped-def]
        out = fn(cur)
        if isinstance(out, dict):
            _drop_nulls(out)
        return out
    return make


async def test_status_updates_match_the_whole_object_path(stores, monkeypatch):
    monkeypatch.setattr(managedfields.meta, "now", lambda: "2026-11-22T20:00:00Z")
    managedfields.REQUEST.set(managedfields.WriteRequest("agent", "status"))
    rng = random.Random(17)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u",
                                                           "creationTimestamp": "2026-11-22T19:00:00Z",
                                                           "labels": {"a": "b"}},
           "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": "n1"}}
    for (storage, _, _) in stores:
        await storage.create("/registry/core/pods/default/p", orjson.dumps(pod))
    outcomes = {"ok": 0, "error": 0, "warned": 0}
    for n in range(400):
        kind = rng.choice(["merge", "merge", "put"])
        fv = rng.choice(["Strict", "Warn", "Warn", "Ignore"])
        results = []
        for i, (storage, cache, store) in enumerate(stores):
            r = random.Random(n)  # the same body for both stores
            cur = await store.get("default", "p")
            body = _body(r, cur["metadata"]["resourceVersion"])
            if kind == "merge":
                def fn(c, b=body):  # type: ignore[no-untyped-def]
                    out = patching.merge_patch(c, copy.deepcopy(b), owned=True)
                    if out.get("metadata", {}).get("resourceVersion") == c["metadata"]["resourceVersion"]:
                        out["metadata"].pop("resourceVersion")
                    return out
            else:
                def fn(c, b=body):  # type: ignore[no-untyped-def]
                    return {**copy.deepcopy(c), **copy.deepcopy(b)}
            make = fn if i == 0 else _full_null_drop(fn)
            warnings: list[str] = []
            try:
                obj, _, wire = await store.update_wire("default", "p", make, subresource="status",
                                                       field_validation=fv, warnings=warnings)
                kv, _ = await storage.get("/registry/core/pods/default/p")
                results.append(("ok", wire, orjson.dumps(obj), kv.value, warnings))
            except errors.StatusError as e:
                results.append(("error", e.code, e.reason, e.message, orjson.dumps(e.details), warnings))
        assert results[0] == results[1], (n, kind, fv)
        outcomes[results[0][0]] += 1
        outcomes["warned"] += bool(results[0][-1])
    assert min(outcomes.values()) > 20, outcomes  # writes, refusals and warnings all exercised


def test_status_update_is_the_strategys_copy():
    """store._status_update gives the bytes Strategy.prepare_for_status_update
    gives, sharing old's values instead of copying them, and leaves old as it was."""
    from kybern.api.strategy import Strategy
    from kybern.apiserver.store import _status_update
    from tests.unit.apiserver.test_wire_bytes import _random_obj

    class WithStatus(Strategy):
        has_status = True

    s = WithStatus()
    rng = random.Random(23)
    for _ in range(3000):
        old, new = _random_obj(rng), _random_obj(rng)
        old.setdefault("metadata", {})
        if rng.random() < 0.3:
            new.pop("status", None)
        if rng.random() < 0.2:
            new.pop("metadata", None)
        before = orjson.dumps(old)
        want = s.prepare_for_status_update(copy.deepcopy(new), copy.deepcopy(old))
        got = _status_update(new, old)
        assert orjson.dumps(got) == orjson.dumps(want)
        assert orjson.dumps(old) == before and got["metadata"] is not old["metadata"]
