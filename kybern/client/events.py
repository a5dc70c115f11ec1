"""Event recorder: writes core/v1 Events about objects, as client-go's
record.EventRecorder does, aggregating repeats of the same event into `count`
so a crash-looping pod does not flood the store."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from kybern.client.http import Client
from kybern.client.resources import EVENTS
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self._seen: dict[tuple[str, ...], dict[str, Any]] = {}
        self._queue: asyncio.Queue[tuple[dict[str, Any], str, str, str]] = asyncio.Queue(10_000)
        self._worker: asyncio.Task[None] | None = None

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Record without waiting, in the order given; failures are logged, never
        raised, and a full queue drops the event (as upstream's broadcaster)."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name=f"events-{self.component}")
        try:
            self._queue.put_nowait((obj, type_, reason, message))
        except asyncio.QueueFull:
            log.debug("event queue full; dropping %s", reason)

    async def _drain(self) -> None:
        while True:
            obj, type_, reason, message = await self._queue.get()
            await self._record(obj, type_, reason, message)

    async def _record(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        m = obj.get("metadata", {})
        ns = m.get("namespace") or "default"
        ref = {"kind": obj.get("kind"), "namespace": m.get("namespace"), "name": m.get("name"),
               "uid": m.get("uid"), "apiVersion": obj.get("apiVersion"),
               "resourceVersion": m.get("resourceVersion")}
        ref = {k: v for k, v in ref.items() if v}
        key = (ns, str(ref.get("kind")), str(ref.get("name")), str(ref.get("uid")), type_, reason, message)
        now = meta.now()
        try:
            prev = self._seen.get(key)
            if prev is not None:
                prev["count"] = prev.get("count", 1) + 1
                prev["lastTimestamp"] = now
                try:
                    self._seen[key] = await self.client.patch(
                        EVENTS, prev["metadata"]["name"],
                        {"count": prev["count"], "lastTimestamp": now}, ns)
                    return
                except errors.StatusError as e:
                    if e.code != 404:
                        raise
            ev = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{m.get('name')}.{uuid.uuid4().hex[:16]}", "namespace": ns},
                "involvedObject": ref, "reason": reason, "message": message, "type": type_,
                "source": {"component": self.component, **({"host": self.host} if self.host else {})},
                "reportingComponent": self.component, "reportingInstance": self.host,
                "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            }
            self._seen[key] = await self.client.create(EVENTS, ev, ns)
            if len(self._seen) > 4096:
                self._seen.pop(next(iter(self._seen)))
        except Exception as e:  # events are best effort, as upstream
            log.debug("event %s/%s not recorded: %r", reason, m.get("name"), e)
