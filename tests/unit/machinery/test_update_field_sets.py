"""An Update's managedFields come from fieldpath.changed() and fieldpath.removed()
(one ordered walk each) instead of fieldpath.compare() and a sort: the same
sets, and the same managedFields bytes, as the compare-based computation on
randomly mutated objects (differential, against a copy of the earlier code)."""

from __future__ import annotations

import copy
import random

import orjson

from kybern.api import schemas
from kybern.machinery import fieldpath as fp
from kybern.machinery import managedfields as mf
from tests.unit.machinery.test_created_shape_memo import KINDS, META, mutate


def _canon(s: fp.Set) -> bytes:
    return orjson.dumps(fp.canonical(s))


def _record_update_by_compare(new: dict, old: dict, *, manager: str, schema: dict, has_status: bool,
                              subresource: str) -> None:
    """record_update() for an object with managers, as it was before changed()/removed()."""
    managers = mf.decode(new) if not subresource else {}
    if not managers:
        managers = mf.decode(old)
    assert managers
    base = mf.without_managed_fields(old)
    ignored = mf.reset_fields(has_status, subresource)
    added, modified, removed = fp.compare(base, mf.without_managed_fields(new), schema)
    changed = fp.recursive_difference(fp.union(added, modified), ignored)
    removed = fp.recursive_difference(removed, ignored)
    for e in managers.values():
        if changed:
            e.fields = fp.difference(e.fields, changed)
        if removed:
            e.fields = fp.difference(e.fields, removed)
    mine = fp.difference(changed, mf.STRIP)
    if mine:
        key = (manager, "Update", "v1", subresource)
        prev = managers.get(key)
        managers[key] = mf.Entry(manager, "Update", "v1", mf.meta.now(),
                                 fp.union(prev.fields, mine) if prev else mine, subresource, stored=None)
    mf.encode(new, mf.cap_updates({k: e for k, e in managers.items() if e.fields}))


def test_changed_and_removed_are_compares_sets() -> None:
    rng = random.Random(5)
    checked = 0
    for name, rest in KINDS.items():
        schema = schemas.definition(name)
        for _ in range(500):
            old = mutate(copy.deepcopy({"metadata": META, **rest}), rng)
            new = mutate(copy.deepcopy(old), rng) if rng.random() < 0.7 else \
                mutate(copy.deepcopy({"metadata": META, **rest}), rng)
            added, modified, removed = fp.compare(old, new, schema)
            ch = fp.changed(old, new, schema)
            assert orjson.dumps(ch) == _canon(fp.union(added, modified)), (name, old, new)  # and ordered
            assert _canon(fp.removed(old, new, schema)) == _canon(removed), (name, old, new)
            checked += 1
    assert checked == 2000


def test_update_managed_fields_match_the_compare_based_ones(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(9)
    monkeypatch.setattr(mf.meta, "now", lambda: "2026-11-22T20:00:00Z")
    checked = 0
    for name, rest in KINDS.items():
        schema = schemas.definition(name)
        has_status = "status" in rest
        for _ in range(300):
            obj = {"apiVersion": "v1", "kind": "X", **mutate(copy.deepcopy({"metadata": META, **rest}), rng)}
            obj.setdefault("metadata", {})
            mf.record_update(obj, None, manager="creator", api_version="v1", schema=schema, has_status=has_status)
            obj = orjson.loads(orjson.dumps(obj))
            for _ in range(3):
                sub = rng.choice(["status", ""]) if has_status else ""
                manager = rng.choice(["kubelet", "controller", "creator"])
                m = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
                new = mutate(copy.deepcopy({k: v for k, v in obj.items() if k != "metadata"}), rng)
                new["metadata"] = mutate(copy.deepcopy(m), rng)
                if obj.get("metadata", {}).get("managedFields"):
                    new["metadata"]["managedFields"] = copy.deepcopy(obj["metadata"]["managedFields"])
                want = copy.deepcopy(new)
                if not mf.decode(obj) and (sub or not mf.decode(want)):
                    continue  # nobody owns anything: the create-like branch, not changed here
                _record_update_by_compare(want, copy.deepcopy(obj), manager=manager, schema=schema,
                                          has_status=has_status, subresource=sub)
                mf.record_update(new, copy.deepcopy(obj), manager=manager, api_version="v1", schema=schema,
                                 has_status=has_status, subresource=sub)
                got = new["metadata"].get("managedFields")
                assert orjson.dumps(got) == orjson.dumps(want["metadata"].get("managedFields")), (name, sub)
                for e in got or []:  # written in upstream's order without the sort
                    assert orjson.dumps(e["fieldsV1"]) == _canon(e["fieldsV1"])
                obj = orjson.loads(orjson.dumps(new))
                checked += 1
    assert checked > 2500
