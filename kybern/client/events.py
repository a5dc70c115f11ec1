"""Event recorder: writes core/v1 Events about objects, as client-go's
record.EventRecorder does, aggregating repeats of the same event into `count`
so a crash-looping pod does not flood the store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from kybern.client.http import Client
from kybern.client.resources import EVENTS
from kybern.machinery import errors

log = logging.getLogger(__name__)


class TokenBucket:
    """`qps` tokens a second, at most `burst` saved up: client-go's
    flowcontrol.NewTokenBucketRateLimiter, which blocks the caller until a token
    is free."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps, self.burst = qps, max(1, burst)
        self._tokens = float(self.burst)
        self._at = time.monotonic()

    async def take(self) -> None:
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.qps)
        self._at = now
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) / self.qps)
            self._tokens, self._at = 1.0, time.monotonic()
        self._tokens -= 1


_last_ns = 0


def _event_time_ns() -> int:
    """An event's time in ns, unique and increasing within a process. A new event is
    named `<object>.<hex of this>`, as client-go names events: names sort as the
    events happened, so a list (ordered by name) and `kubectl describe`
    (stable-sorted by lastTimestamp, whole seconds) show them in order."""
    global _last_ns
    _last_ns = max(time.time_ns(), _last_ns + 1)
    return _last_ns


def _reference(obj: dict[str, Any], field_path: str = "") -> dict[str, Any]:
    """An ObjectReference to `obj`, as client-go's reference.GetReference."""
    m = obj.get("metadata", {})
    ref = {"kind": obj.get("kind"), "namespace": m.get("namespace"), "name": m.get("name"),
           "uid": m.get("uid"), "apiVersion": obj.get("apiVersion"),
           "resourceVersion": m.get("resourceVersion"), "fieldPath": field_path}
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """`qps`/`burst` limit the writes as the kubelet's eventRecordQPS (50) and
    eventBurst (100) do: a burst of pod starts is not slowed by its own events,
    which follow at that rate. 0 means unlimited."""

    def __init__(self, client: Client, component: str, host: str = "", *, qps: float = 0,
                 burst: int = 0, yield_to: Callable[[], bool] | None = None, max_yield: float = 2.0) -> None:
        self.client = client
        # while yield_to() is true (the node agent: pods are waiting to be started) an event
        # waits, at most max_yield seconds: events are best effort, a pod's start is not
        self._yield_to = yield_to
        self._max_yield = max_yield
        self.component = component
        self.host = host
        self._seen: dict[tuple[str, ...], dict[str, Any]] = {}
        self._queue: asyncio.Queue[tuple[dict[str, Any], str, str, str, str, int, dict[str, Any]]] = \
            asyncio.Queue(10_000)
        self._worker: asyncio.Task[None] | None = None
        self._limit = TokenBucket(qps, burst) if qps > 0 else None

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str, *, field_path: str = "",
              related: dict[str, Any] | None = None, action: str = "") -> None:
        """Record without waiting, in the order given; failures are logged, never
        raised, and a full queue drops the event (as upstream's broadcaster).
        `related` (a second object) and `action` are the events.k8s.io recorder's
        Eventf(regarding, related, type, reason, action, ...) fields, e.g. the
        scheduler's Preempted event names its preemptor and the action Preempting."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name=f"events-{self.component}")
        try:
            # the time is taken now, as client-go stamps an event when it is made, not
            # when its turn to be written comes
            extra: dict[str, Any] = {}
            if related is not None:
                extra["related"] = _reference(related)
            if action:
                extra["action"] = action
            self._queue.put_nowait((obj, type_, reason, message, field_path, _event_time_ns(), extra))
        except asyncio.QueueFull:
            log.debug("event queue full; dropping %s", reason)

    async def _drain(self) -> None:
        while True:
            obj, type_, reason, message, field_path, at_ns, extra = await self._queue.get()
            if self._yield_to is not None and self._yield_to():
                until = time.monotonic() + self._max_yield
                while self._yield_to() and time.monotonic() < until:
                    await asyncio.sleep(0.02)
            if self._limit is not None:
                await self._limit.take()
            await self._record(obj, type_, reason, message, field_path, at_ns, extra)

    async def _record(self, obj: dict[str, Any], type_: str, reason: str, message: str,
                      field_path: str = "", at_ns: int = 0, extra: dict[str, Any] | None = None) -> None:
        m = obj.get("metadata", {})
        ns = m.get("namespace") or "default"
        ref = _reference(obj, field_path)
        key = (ns, str(ref.get("kind")), str(ref.get("name")), str(ref.get("uid")), field_path, type_, reason,
               message)
        at_ns = at_ns or _event_time_ns()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at_ns // 1_000_000_000))
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
                "metadata": {"name": f"{m.get('name')}.{at_ns:x}", "namespace": ns},
                "involvedObject": ref, "reason": reason, "message": message, "type": type_,
                "source": {"component": self.component, **({"host": self.host} if self.host else {})},
                "reportingComponent": self.component, "reportingInstance": self.host,
                "firstTimestamp": now, "lastTimestamp": now, "count": 1, **(extra or {}),
            }
            self._seen[key] = await self.client.create(EVENTS, ev, ns)
            if len(self._seen) > 4096:
                self._seen.pop(next(iter(self._seen)))
        except Exception as e:  # events are best effort, as upstream
            log.debug("event %s/%s not recorded: %r", reason, m.get("name"), e)
