"""Garbage-collector edits that need no server."""

from kybern.controllers.garbagecollector import _drop_finalizer, _drop_owner_refs


def test_drop_owner_refs():
    obj = {"metadata": {"ownerReferences": [{"uid": "a"}, {"uid": "b"}]}}
    assert _drop_owner_refs(obj, {"a"})
    assert obj["metadata"]["ownerReferences"] == [{"uid": "b"}]
    assert not _drop_owner_refs(obj, {"zzz"})
    assert _drop_owner_refs(obj, {"b"})
    assert "ownerReferences" not in obj["metadata"]


def test_drop_finalizer():
    obj = {"metadata": {"finalizers": ["foregroundDeletion", "x"]}}
    assert _drop_finalizer(obj, "foregroundDeletion")
    assert obj["metadata"]["finalizers"] == ["x"]
    assert not _drop_finalizer(obj, "orphan")
