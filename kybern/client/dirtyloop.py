"""The level-triggered loop of the components that rebuild their whole output
from their caches (the service proxy's rules, the NetworkPolicy enforcer's
table, ServiceLB's addresses): any change sets one event; one sync computes
everything; changes that arrive meanwhile coalesce into the next sync."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn

log = logging.getLogger(__name__)


async def sync_when_dirty(dirty: asyncio.Event, sync: Callable[[], Awaitable[object]], what: str, *,
                          pause: Callable[[float], float] = lambda took: 0.0) -> NoReturn:
    """Forever: wait for `dirty`, clear it, run `sync()`; a failure is logged and
    retried in 1 s (or at the next change); then wait `pause(seconds the sync
    took)` before the next one."""
    while True:
        await dirty.wait()
        dirty.clear()
        started = time.monotonic()
        try:
            await sync()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 -- retried on the next change or in 1 s
            log.warning("%s failed: %r", what, e)
            asyncio.get_running_loop().call_later(1.0, dirty.set)
        await asyncio.sleep(pause(time.monotonic() - started))
