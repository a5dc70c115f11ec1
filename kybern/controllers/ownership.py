"""Adopting and releasing dependents by controller ownerReference, as upstream's
ControllerRefManager: a controller owns the objects whose controller reference
carries its uid; it adopts orphans its selector matches and releases the ones it
owns that its selector no longer matches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kybern.client.http import Client
from kybern.client.resources import Resource
from kybern.machinery import errors, meta
from kybern.machinery.selectors import selector_matches


async def claim(client: Client, resource: Resource, owner: dict[str, Any],
                selector: dict[str, Any] | None, candidates: list[dict[str, Any]],
                can_adopt: Callable[[], Awaitable[bool]]) -> list[dict[str, Any]]:
    """The candidates `owner` controls after adoption/release, in candidate order.

    `can_adopt` is asked (once, lazily) before the first adoption: upstream re-reads
    the owner live so that a stale cache never makes a deleted owner adopt."""
    uid = owner["metadata"]["uid"]
    deleting = meta.is_deleting(owner)
    owned: list[dict[str, Any]] = []
    adopt_ok: bool | None = None
    for obj in candidates:
        labels = obj["metadata"].get("labels") or {}
        ref = meta.controller_of(obj)
        if ref is not None:
            if ref.get("uid") != uid:
                continue  # someone else's
            if selector_matches(selector, labels):
                owned.append(obj)
            elif not deleting:
                await release(client, resource, obj, uid)
            continue
        if deleting or meta.is_deleting(obj) or not selector_matches(selector, labels):
            continue
        if obj["metadata"].get("namespace") != owner["metadata"].get("namespace"):
            continue
        if adopt_ok is None:
            adopt_ok = await can_adopt()
        if not adopt_ok:
            continue
        adopted = await adopt(client, resource, owner, obj)
        if adopted is not None:
            owned.append(adopted)
    return owned


async def adopt(client: Client, resource: Resource, owner: dict[str, Any],
                obj: dict[str, Any]) -> dict[str, Any] | None:
    refs = [r for r in obj["metadata"].get("ownerReferences") or []
            if r.get("uid") != owner["metadata"]["uid"]]
    refs.append(meta.owner_ref(owner, controller=True))
    m = obj["metadata"]
    try:
        return await client.patch(resource, m["name"],
                                  {"metadata": {"ownerReferences": refs, "uid": m["uid"]}},
                                  m.get("namespace"))
    except errors.StatusError as e:
        if e.code == 404:
            return None  # gone meanwhile: nothing to adopt
        raise


async def release(client: Client, resource: Resource, obj: dict[str, Any], owner_uid: str) -> None:
    m = obj["metadata"]
    refs = [r for r in m.get("ownerReferences") or [] if r.get("uid") != owner_uid]
    try:
        await client.patch(resource, m["name"],
                           {"metadata": {"ownerReferences": refs or None, "uid": m["uid"]}},
                           m.get("namespace"))
    except errors.StatusError as e:
        if e.code not in (404, 422):  # gone, or no longer ours to release
            raise


def fresh_owner_check(client: Client, resource: Resource,
                      owner: dict[str, Any]) -> Callable[[], Awaitable[bool]]:
    """can_adopt for claim(): the owner, read live, is the same object and not deleting."""
    async def check() -> bool:
        m = owner["metadata"]
        try:
            live = await client.get(resource, m["name"], m.get("namespace"))
        except errors.StatusError as e:
            if e.code == 404:
                return False
            raise
        return live["metadata"].get("uid") == m["uid"] and not meta.is_deleting(live)
    return check
