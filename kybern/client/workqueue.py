"""A work queue of keys, as client-go's workqueue: a key waiting is queued once
however often it is added; a key being processed is never processed twice at
once (it is re-queued after); failures retry with per-key exponential backoff.

`run_workers(queue, reconcile, n)` is the whole controller loop: reconcile(key)
raising means "try again later", returning means done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class WorkQueue:
    def __init__(self, name: str, *, base_delay: float = 0.005, max_delay: float = 60.0) -> None:
        self.name = name
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._base = base_delay
        self._max = max_delay
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def add(self, key: str) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        old = self._timers.get(key)
        if old is not None and old.when() <= loop.time() + delay:
            return  # an earlier wake-up is already set
        if old is not None:
            old.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(self._base * (2 ** n), self._max))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    async def get(self) -> str:
        key = await self._queue.get()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.put_nowait(key)

    def __len__(self) -> int:
        return self._queue.qsize()


async def run_workers(queue: WorkQueue, reconcile: Callable[[str], Awaitable[None]],
                      workers: int = 2) -> None:
    async def worker() -> None:
        while True:
            key = await queue.get()
            try:
                await reconcile(key)
                queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.debug("%s: reconcile %s failed: %r", queue.name, key, e)
                queue.add_rate_limited(key)
            finally:
                queue.done(key)

    await asyncio.gather(*(worker() for _ in range(workers)))
