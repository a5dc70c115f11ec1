"""Kinds served at several versions over one storage key: a `Store` wrapper
that converts objects between the version a client speaks and the version kept
in storage — the codec layer of k8s.io/apiserver's storage in Python.

A kind opts in through its strategy: `strategy.storage_version` (an apiVersion)
and `strategy.convert(obj, api_version) -> obj`. The server then gives that
version's RESTStore a `ConvertingStorage` instead of the raw store, so the
generic store only ever sees objects in its own version: reads (get, list,
watch, the previous value of events) are converted to it, writes are converted
to the storage version. HorizontalPodAutoscaler (autoscaling/v1 and v2) and
multi-version custom resources use it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson

from kybern.storage import interface as st

Obj = dict[str, Any]


class Converter(Protocol):
    storage_version: str

    def convert(self, obj: Obj, api_version: str) -> Obj: ...


def convertible(strategy: Any) -> bool:
    return callable(getattr(strategy, "convert", None)) and bool(getattr(strategy, "storage_version", None))


class ConvertingStorage:
    """A `Store` seen through one API version."""

    def __init__(self, inner: st.Store, converter: Converter, api_version: str) -> None:
        self.inner = inner
        self.converter = converter
        self.api_version = api_version

    # -- value conversion ----------------------------------------------------
    def _to(self, value: bytes, api_version: str) -> bytes:
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        if not isinstance(obj, dict) or obj.get("apiVersion") == api_version:
            return value
        return orjson.dumps(self.converter.convert(obj, api_version))

    def _read(self, kv: st.KV | None) -> st.KV | None:
        if kv is None:
            return None
        return st.KV(kv.key, self._to(kv.value, self.api_version), kv.create_revision, kv.mod_revision)

    def _write(self, value: bytes) -> bytes:
        return self._to(value, self.converter.storage_version)

    # -- Store protocol ------------------------------------------------------
    async def get(self, key: str) -> tuple[st.KV | None, int]:
        kv, rev = await self.inner.get(key)
        return self._read(kv), rev

    async def list(self, prefix: str, *, revision: int = 0, start: str = "", limit: int = 0) -> st.ListResult:
        res = await self.inner.list(prefix, revision=revision, start=start, limit=limit)
        return st.ListResult([self._read(kv) for kv in res.kvs], res.revision, res.more)  # type: ignore[misc]

    async def count(self, prefix: str) -> int:
        return await self.inner.count(prefix)

    async def create(self, key: str, value: bytes) -> int:
        return await self.inner.create(key, self._write(value))

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        try:
            return await self.inner.update(key, self._write(value), expected_revision)
        except st.Conflict as e:
            raise st.Conflict(e.key, self._read(e.current)) from None

    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, st.KV]:
        rev, kv = await self.inner.delete(key, expected_revision)
        return rev, self._read(kv)  # type: ignore[return-value]

    async def watch(self, prefix: str, revision: int) -> AsyncIterator[st.Event]:
        async for ev in self.inner.watch(prefix, revision):
            yield st.Event(ev.type, self._read(ev.kv), self._read(ev.prev), ev.created)  # type: ignore[arg-type]

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def close(self) -> None:  # the inner store is shared; its owner closes it
        return None
