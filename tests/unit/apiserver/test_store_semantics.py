"""The generic REST store's promises, driven directly (no HTTP) on a real
SQLiteStore: system metadata, optimistic concurrency, generation, finalizers,
dry-run, consistent pagination, selectors, and 410 Expired after compaction."""

from __future__ import annotations

import pytest

from kybern.api.catalog import builtin_registry
from kybern.apiserver.store import Predicate, RESTStore
from kybern.machinery import errors
from kybern.storage.sqlite import SQLiteStore

REG = builtin_registry()


@pytest.fixture
async def storage(tmp_path):
    s = SQLiteStore(str(tmp_path / "state.db"))
    yield s
    await s.close()


@pytest.fixture
async def stores(storage):
    made: list[RESTStore] = []

    def make(group: str, version: str, plural: str, **kw) -> RESTStore:
        info = REG.get(group, version, plural)
        assert info is not None
        s = RESTStore(info, storage, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        await s.cache.stop()


async def test_a_taken_generated_name_is_generated_again(stores, monkeypatch):
    """RetryGenerateName (upstream 1.32): a collision of the random suffix is not the
    client's 409 unless every one of the server's tries is taken."""
    from kybern.apiserver import store as store_module

    cms = stores("", "v1", "configmaps")
    await cms.create("ns", {"metadata": {"name": "x-aaaaa"}})
    suffixes = iter(["aaaaa", "aaaaa", "bbbbb"])
    monkeypatch.setattr(store_module.random, "choices", lambda chars, k: list(next(suffixes)))
    made = await cms.create("ns", {"metadata": {"generateName": "x-"}})
    assert made["metadata"]["name"] == "x-bbbbb"
    monkeypatch.setattr(store_module.random, "choices", lambda chars, k: list("aaaaa"))
    with pytest.raises(errors.StatusError) as ei:
        await cms.create("ns", {"metadata": {"generateName": "x-"}})
    assert ei.value.reason == "AlreadyExists" and ei.value.details["name"] == "x-aaaaa"


def _deployment(name: str, replicas: int = 1) -> dict:
    return {"metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "demo:v1"}]}}}}


async def test_create_sets_system_metadata_and_refuses_duplicates(stores):
    cms = stores("", "v1", "configmaps")
    a = await cms.create("ns", {"metadata": {"generateName": "x-", "uid": "mine", "resourceVersion": "7",
                                             "creationTimestamp": "1999-01-01T00:00:00Z"}})
    m = a["metadata"]
    assert m["name"].startswith("x-") and len(m["name"]) == 7 and m["namespace"] == "ns"
    assert m["uid"] != "mine" and m["creationTimestamp"] != "1999-01-01T00:00:00Z" and m["resourceVersion"] != "7"
    assert a["apiVersion"] == "v1" and a["kind"] == "ConfigMap" and "generation" not in m
    with pytest.raises(errors.StatusError) as ei:
        await cms.create("ns", {"metadata": {"name": m["name"]}})
    assert ei.value.reason == "AlreadyExists" and ei.value.code == 409
    with pytest.raises(errors.StatusError) as ei:
        await cms.create("ns", {"metadata": {}})
    assert ei.value.code == 422 and ei.value.details["causes"][0]["field"] == "metadata.name"
    with pytest.raises(errors.StatusError) as ei:
        await cms.create("ns", {"kind": "Secret", "metadata": {"name": "k"}})
    assert ei.value.code == 400
    with pytest.raises(errors.StatusError) as ei:
        await cms.get("ns", "missing")
    assert ei.value.status()["details"] == {"name": "missing", "kind": "configmaps"}


async def test_updates_are_guarded_by_resource_version(stores):
    cms = stores("", "v1", "configmaps")
    a = await cms.create("ns", {"metadata": {"name": "a"}, "data": {"k": "1"}})
    rv1 = a["metadata"]["resourceVersion"]
    b, created = await cms.update("ns", "a", lambda cur: {**cur, "data": {"k": "2"}})
    assert not created and int(b["metadata"]["resourceVersion"]) > int(rv1)
    stale = {**a, "data": {"k": "3"}}
    with pytest.raises(errors.StatusError) as ei:
        await cms.update("ns", "a", lambda cur: stale)
    assert ei.value.reason == "Conflict" and "the object has been modified" in ei.value.message
    # unconditional: no resourceVersion in the body
    c, _ = await cms.update("ns", "a", lambda cur: {"metadata": {"name": "a"}, "data": {"k": "4"}})
    assert c["data"] == {"k": "4"} and c["metadata"]["uid"] == a["metadata"]["uid"]
    # a no-op write stores nothing and keeps the resourceVersion
    d, _ = await cms.update("ns", "a", lambda cur: cur)
    assert d["metadata"]["resourceVersion"] == c["metadata"]["resourceVersion"]
    with pytest.raises(errors.StatusError) as ei:
        await cms.update("ns", "a", lambda cur: {**cur, "metadata": {**cur["metadata"], "uid": "other"}})
    assert ei.value.reason == "Conflict" and "Precondition failed: UID" in ei.value.message
    with pytest.raises(errors.StatusError) as ei:
        await cms.update("ns", "nope", lambda cur: {"metadata": {"name": "nope"}})
    assert ei.value.code == 404


async def test_generation_counts_spec_changes_only(stores):
    deps = stores("apps", "v1", "deployments")
    d = await deps.create("ns", _deployment("d"))
    assert d["metadata"]["generation"] == 1

    def relabel(cur):
        cur["metadata"]["labels"] = {"x": "y"}
        return cur
    d, _ = await deps.update("ns", "d", relabel)
    assert d["metadata"]["generation"] == 1

    def status(cur):
        cur["status"] = {"replicas": 5, "observedGeneration": 1}
        cur["spec"]["replicas"] = 9  # ignored: /status changes status only
        return cur
    d, _ = await deps.update("ns", "d", status, subresource="status")
    assert d["metadata"]["generation"] == 1 and d["status"]["replicas"] == 5 and d["spec"]["replicas"] == 1

    def scale(cur):
        cur["spec"]["replicas"] = 3
        cur["status"] = {"replicas": 0}  # ignored: the main resource keeps status
        return cur
    d, _ = await deps.update("ns", "d", scale)
    assert d["metadata"]["generation"] == 2 and d["status"]["replicas"] == 5


async def test_finalizers_hold_deletion_until_removed(stores):
    cms = stores("", "v1", "configmaps")
    await cms.create("ns", {"metadata": {"name": "f", "finalizers": ["example.com/x"]}})
    obj, now = await cms.delete("ns", "f")
    assert not now and obj["metadata"]["deletionTimestamp"]
    kept = await cms.get("ns", "f")
    assert kept["metadata"]["deletionTimestamp"] == obj["metadata"]["deletionTimestamp"]

    def drop(cur):
        cur["metadata"]["finalizers"] = []
        return cur
    await cms.update("ns", "f", drop)
    with pytest.raises(errors.StatusError):
        await cms.get("ns", "f")


async def test_propagation_policies_set_gc_finalizers(stores):
    deps = stores("apps", "v1", "deployments")
    for policy, want in (("Orphan", ["orphan"]), ("Foreground", ["foregroundDeletion"])):
        await deps.create("ns", _deployment(policy.lower()))
        obj, now = await deps.delete("ns", policy.lower(), {"propagationPolicy": policy})
        assert not now and obj["metadata"]["finalizers"] == want and obj["metadata"]["deletionTimestamp"]
    await deps.create("ns", _deployment("bg"))
    _, now = await deps.delete("ns", "bg", {"propagationPolicy": "Background"})
    assert now


async def test_dry_run_persists_nothing(stores):
    cms = stores("", "v1", "configmaps")
    dry = await cms.create("ns", {"metadata": {"name": "d"}}, dry_run=True)
    assert dry["metadata"]["uid"] and "resourceVersion" not in dry["metadata"]
    with pytest.raises(errors.StatusError):
        await cms.get("ns", "d")
    real = await cms.create("ns", {"metadata": {"name": "d"}, "data": {"a": "1"}})
    out, _ = await cms.update("ns", "d", lambda cur: {**cur, "data": {"a": "2"}}, dry_run=True)
    assert out["data"] == {"a": "2"}
    _, now = await cms.delete("ns", "d", dry_run=True)
    assert now
    got = await cms.get("ns", "d")
    assert got["data"] == {"a": "1"} and got["metadata"]["resourceVersion"] == real["metadata"]["resourceVersion"]


async def test_pages_come_from_one_snapshot_and_expire_after_compaction(stores, storage):
    cms = stores("", "v1", "configmaps")
    for i in range(5):
        await cms.create("ns", {"metadata": {"name": f"p{i}"}, "data": {"v": "old"}})
    page = await cms.list("ns", pred=Predicate(), limit=2)
    assert [o["metadata"]["name"] for o in page["items"]] == ["p0", "p1"]
    token = page["metadata"]["continue"]
    await cms.delete("ns", "p3")
    await cms.update("ns", "p2", lambda cur: {**cur, "data": {"v": "new"}})
    page2 = await cms.list("ns", pred=Predicate(), limit=2, continue_=token)
    assert [(o["metadata"]["name"], o["data"]["v"]) for o in page2["items"]] == [("p2", "old"), ("p3", "old")]
    assert page2["metadata"]["resourceVersion"] == page["metadata"]["resourceVersion"]
    await storage.compact(await storage.current_revision())
    with pytest.raises(errors.StatusError) as ei:
        await cms.list("ns", pred=Predicate(), limit=2, continue_=page2["metadata"]["continue"])
    assert ei.value.code == 410 and ei.value.reason == "Expired"
    with pytest.raises(errors.StatusError) as ei:
        await cms.list("ns", pred=Predicate(), limit=2, continue_="garbage")
    assert ei.value.code == 400


async def test_watch_from_a_compacted_revision_is_410(storage, stores):
    cms = stores("", "v1", "configmaps")
    first = await cms.create("ns", {"metadata": {"name": "w0"}})
    for i in range(1, 4):
        await cms.create("ns", {"metadata": {"name": f"w{i}"}})
    await storage.compact(await storage.current_revision())
    # a fresh apiserver (new cache) cannot replay history that storage no longer has
    fresh = RESTStore(cms.info, storage, cache=type(cms.cache)(storage))
    try:
        with pytest.raises(errors.StatusError) as ei:
            await fresh.watch("ns", pred=Predicate(), resource_version=first["metadata"]["resourceVersion"])
        st = ei.value.status()
        assert st["code"] == 410 and st["reason"] == "Expired" and "too old resource version" in st["message"]
        with pytest.raises(errors.StatusError) as ei:
            await fresh.watch("ns", pred=Predicate(), resource_version="-1")
        assert ei.value.code == 400
    finally:
        await fresh.cache.stop()


@pytest.mark.parametrize("plural,field,ok", [
    ("configmaps", "metadata.name", True), ("configmaps", "metadata.namespace", True),
    ("configmaps", "data.x", False), ("pods", "spec.nodeName", True), ("pods", "status.phase", True),
    ("pods", "spec.containers", False), ("secrets", "type", True), ("namespaces", "status.phase", True),
    ("events", "involvedObject.name", True), ("nodes", "spec.unschedulable", True),
])
async def test_field_selectors_limited_to_indexed_fields(stores, plural, field, ok):
    s = stores("", "v1", plural)
    if ok:
        assert s.predicate(None, f"{field}=x").fields == [(field, "=", "x")]
    else:
        with pytest.raises(errors.StatusError) as ei:
            s.predicate(None, f"{field}=x")
        assert ei.value.code == 400 and field in ei.value.message


async def test_namespace_check_refusal_names_the_object(stores):
    async def terminating(ns: str) -> None:
        raise errors.forbidden(f"unable to create new content in namespace {ns} because it is being terminated")
    cms = stores("", "v1", "configmaps", namespace_check=terminating)
    with pytest.raises(errors.StatusError) as ei:
        await cms.create("gone", {"metadata": {"name": "c"}})
    assert ei.value.code == 403 and ei.value.message == (
        'configmaps "c" is forbidden: unable to create new content in namespace gone because it is being terminated')
    deps = stores("apps", "v1", "deployments", namespace_check=terminating)
    with pytest.raises(errors.StatusError) as ei:
        await deps.create("gone", {**_deployment("x"), "metadata": {"generateName": "x-"}})
    assert ei.value.message.startswith("deployments.apps is forbidden: ")
