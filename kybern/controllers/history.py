"""ControllerRevisions: the snapshots of a DaemonSet's or StatefulSet's pod
template that make rollouts and `kubectl rollout undo` work (upstream
pkg/controller/history and the DS/STS getPatch helpers).

A revision's `data` is the strategic-merge patch that restores the template,
`{"spec": {"template": {..., "$patch": "replace"}}}`, which is exactly what
kubectl applies on undo. Its name is `<parent>-<hash of data>`; `revision` is a
counter that only grows (re-using an old template bumps that revision to the top,
as upstream does on rollback).
"""

from __future__ import annotations

from typing import Any

import orjson

from kybern.client.http import Client
from kybern.client.resources import CONTROLLERREVISIONS
from kybern.controllers.deployment_util import fnv32a, safe_encode
from kybern.machinery import errors, meta

REVISION_HASH_LABEL = "controller-revision-hash"


def _without_nulls(v: Any) -> Any:
    """Nulls (e.g. the template's `creationTimestamp: null`) are dropped: an apiserver
    may store the RawExtension without them, and equal templates must compare equal."""
    if isinstance(v, dict):
        return {k: _without_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_without_nulls(x) for x in v]
    return v


def _sorted(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _sorted(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [_sorted(x) for x in v]
    return v


def revision_data(parent: dict[str, Any]) -> dict[str, Any]:
    """The patch as upstream's getPatch marshals it: keys sorted (Go marshals a map so),
    nulls kept. kubectl's `rollout undo` compares these bytes with the patch it makes
    from the live object to say "skipped rollback (current template already matches
    revision N)"."""
    tmpl = dict((parent.get("spec") or {}).get("template") or {})
    tmpl["$patch"] = "replace"
    return _sorted({"spec": {"template": tmpl}})


def hash_data(data: dict[str, Any], collision_count: int | None = None) -> str:
    """HashControllerRevision: FNV-32a of the data (and collision count), safe-encoded."""
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32a(raw)))


def template_of(rev: dict[str, Any]) -> dict[str, Any]:
    tmpl = dict(((rev.get("data") or {}).get("spec") or {}).get("template") or {})
    tmpl.pop("$patch", None)
    return tmpl


def same_data(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return orjson.dumps(_without_nulls(a), option=orjson.OPT_SORT_KEYS) == \
        orjson.dumps(_without_nulls(b), option=orjson.OPT_SORT_KEYS)


def owned(revisions: list[dict[str, Any]], parent: dict[str, Any]) -> list[dict[str, Any]]:
    """The parent's revisions, oldest revision number first."""
    uid = parent["metadata"]["uid"]
    mine = [r for r in revisions if (meta.controller_of(r) or {}).get("uid") == uid]
    return sorted(mine, key=lambda r: (int(r.get("revision") or 0), r["metadata"].get("creationTimestamp") or ""))


def next_number(revisions: list[dict[str, Any]]) -> int:
    return max((int(r.get("revision") or 0) for r in revisions), default=0) + 1


async def ensure(client: Client, parent: dict[str, Any], revisions: list[dict[str, Any]],
                 labels: dict[str, str], collision_count: int) -> tuple[dict[str, Any], int]:
    """The revision for the parent's current template (created, or an equal old one
    moved to the top), and the collision count to record in status."""
    data = revision_data(parent)
    nxt = next_number(revisions)
    equal = [r for r in revisions if same_data(r.get("data") or {}, data)]
    if equal:
        rev = equal[-1]
        if int(rev.get("revision") or 0) == nxt - 1:
            return rev, collision_count
        body = dict(rev)
        body["revision"] = nxt
        return await client.update(CONTROLLERREVISIONS, body), collision_count
    ns = parent["metadata"].get("namespace")
    ann = parent["metadata"].get("annotations") or {}
    while True:
        h = hash_data(data, collision_count)
        name = f"{parent['metadata']['name']}-{h}"
        cr = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
              "metadata": {"name": name, "namespace": ns,
                           "labels": {**labels, REVISION_HASH_LABEL: h},
                           # the parent's annotations, as upstream's DS snapshot and STS
                           # newRevision copy them: `kubectl rollout history` reads the
                           # change-cause of each revision from here
                           **({"annotations": dict(ann)} if ann else {}),
                           "ownerReferences": [meta.owner_ref(parent, controller=True)]},
              "data": data, "revision": nxt}
        try:
            return await client.create(CONTROLLERREVISIONS, cr, ns), collision_count
        except errors.StatusError as e:
            if e.code != 409:
                raise
            existing = await client.get(CONTROLLERREVISIONS, name, ns)
            if (meta.controller_of(existing) or {}).get("uid") == parent["metadata"]["uid"] \
                    and same_data(existing.get("data") or {}, data):
                if int(existing.get("revision") or 0) >= nxt - 1:
                    return existing, collision_count  # ours, just not in the cache yet
                body = dict(existing)
                body["revision"] = nxt
                return await client.update(CONTROLLERREVISIONS, body), collision_count
            collision_count += 1  # someone else's revision has our name: hash again


async def truncate(client: Client, revisions: list[dict[str, Any]], live: set[str], limit: int) -> None:
    """Delete the oldest revisions no pod uses, keeping `limit` of them
    (revisionHistoryLimit)."""
    dead = [r for r in revisions if r["metadata"]["name"] not in live]
    for r in dead[: max(0, len(dead) - limit)]:
        try:
            await client.delete(CONTROLLERREVISIONS, r["metadata"]["name"], r["metadata"].get("namespace"))
        except errors.StatusError as e:
            if e.code != 404:
                raise
