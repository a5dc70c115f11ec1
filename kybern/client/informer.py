"""Informers: a local cache of one resource kept current by list-then-watch, as
client-go's SharedInformer does.

List first, then watch from the list's resourceVersion; on a 410 (compacted) or a
dropped stream, re-list and replay the difference as add/update/delete. Handlers
are called with the cache already updated, so a reconciler reading the cache
sees at least what triggered it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kybern.client.http import Client
from kybern.client.resources import Resource
from kybern.machinery import errors

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any] | None, dict[str, Any]], None]
"""handler(event_type, old_obj, new_obj): event_type is ADDED, MODIFIED or DELETED."""


def key_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else meta["name"]


class Informer:
    def __init__(self, client: Client, resource: Resource, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.cache: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.resource_version = ""
        self._handlers: list[Handler] = []
        self._task: asyncio.Task[None] | None = None

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)
        for obj in list(self.cache.values()):
            handler("ADDED", None, obj)

    def remove_handler(self, handler: Handler) -> None:
        """Stop calling `handler` (a component sharing this informer stopped)."""
        self._handlers = [h for h in self._handlers if h != handler]

    @property
    def handlers(self) -> list[Handler]:
        return list(self._handlers)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.cache.get(key)

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace is None:
            return list(self.cache.values())
        return [o for o in self.cache.values() if o["metadata"].get("namespace") == namespace]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer-{self.resource.plural}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def wait_synced(self) -> None:
        await self.synced.wait()

    def _dispatch(self, kind: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        for h in self._handlers:
            try:
                h(kind, old, new)
            except Exception:  # a broken handler must not stop the informer
                log.exception("informer handler failed for %s", self.resource.plural)

    async def _relist(self) -> None:
        lst = await self.client.list(self.resource, self.namespace,
                                     label_selector=self.label_selector,
                                     field_selector=self.field_selector)
        fresh = {key_of(o): o for o in lst.get("items", [])}
        for o in fresh.values():
            o.setdefault("apiVersion", self.resource.api_version)
            o.setdefault("kind", self.resource.kind)
        old_cache = self.cache
        self.cache = dict(fresh)
        for k, obj in fresh.items():
            prev = old_cache.get(k)
            if prev is None:
                self._dispatch("ADDED", None, obj)
            elif prev["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._dispatch("MODIFIED", prev, obj)
        for k, prev in old_cache.items():
            if k not in fresh:
                self._dispatch("DELETED", prev, prev)
        self.resource_version = lst["metadata"].get("resourceVersion", "")
        self.synced.set()

    async def _run(self) -> None:
        backoff = 0.1
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                async for ev in self.client.watch(self.resource, self.namespace,
                                                  resource_version=self.resource_version,
                                                  label_selector=self.label_selector,
                                                  field_selector=self.field_selector,
                                                  timeout_seconds=300):
                    self._apply(ev)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except _Expired:
                need_list = True
            except errors.StatusError as e:
                if e.code == 410:
                    need_list = True
                else:
                    log.warning("watch %s failed: %s", self.resource.plural, e)
                    need_list = True
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5)
            except Exception as e:
                log.debug("watch %s interrupted: %r", self.resource.plural, e)
                need_list = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5)

    def _apply(self, ev: dict[str, Any]) -> None:
        typ = ev.get("type")
        obj = ev.get("object") or {}
        if typ == "ERROR":
            if obj.get("code") == 410:
                raise _Expired()
            raise errors.StatusError.from_status(obj)
        rv = obj.get("metadata", {}).get("resourceVersion")
        if rv:
            self.resource_version = rv
        if typ == "BOOKMARK":
            return
        obj.setdefault("apiVersion", self.resource.api_version)
        obj.setdefault("kind", self.resource.kind)
        k = key_of(obj)
        prev = self.cache.get(k)
        if typ == "DELETED":
            self.cache.pop(k, None)
            self._dispatch("DELETED", prev, obj)
        else:
            self.cache[k] = obj
            self._dispatch("ADDED" if prev is None else "MODIFIED", prev, obj)


class _Expired(Exception):
    pass
