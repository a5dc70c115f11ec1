"""How many pod syncs run at once on the agent's event loop.

Every pod worker is a task on one event loop. Unbounded, a burst of 200 new
pods advances in lockstep: each await hands the loop to the next of 200
workers, so every pod gets its sandbox, then every pod its container, then
every pod its status write, and all 200 are reported running together at the
end of the burst. With a few slots, taken in the order asked, the first pods
finish (and are reported) while later ones are still being prepared, and the
apiserver works on their status beside the agent instead of after it.

Sixteen slots: with container starts in the spawn worker a sync mostly waits
(for the worker, for the apiserver's answer), and 16 overlap those waits best
in a 200-pod burst (8 and 32 gave a higher p99; docs/benchmarks.md, issue 4).

A slot is only lent: after `lease` seconds a sync that is still running (a
postStart hook, a grace period, a slow volume) gives it back to the next
waiter and goes on without one, so no sync can hold others back for long.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator


class SyncSlots:
    def __init__(self, slots: int = 16, lease: float = 0.1) -> None:
        self._free = slots
        self._lease = lease
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def backlog(self) -> bool:
        """Are syncs waiting for a slot? (The agent's events wait while they are.)"""
        return bool(self._waiters)

    def _hand_on(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._free > 0 and not self._waiters:
            self._free -= 1
        else:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():  # handed to us as we were cancelled
                    self._hand_on()
                raise
        held = True

        def give_back() -> None:
            nonlocal held
            if held:
                held = False
                self._hand_on()

        timer = asyncio.get_running_loop().call_later(self._lease, give_back)
        try:
            yield
        finally:
            timer.cancel()
            give_back()
