"""Per-container back-off, as the kubelet's flowcontrol.Backoff: 10s doubling to a
5m cap, forgotten after a quiet period twice the cap. Used both for restarting
crashed containers (CrashLoopBackOff) and for retrying image pulls
(ImagePullBackOff)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

BASE = 10.0
MAX = 300.0


@dataclass
class Backoff:
    base: float = BASE
    cap: float = MAX
    _entries: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (delay, last update)

    def delay(self, key: str, now: float | None = None) -> float:
        """The current delay of `key` (0 when it has none or it was forgotten)."""
        now = time.time() if now is None else now
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        delay, updated = entry
        if now - updated > 2 * self.cap:
            del self._entries[key]
            return 0.0
        return delay

    def in_backoff_since(self, key: str, event_time: float, now: float | None = None) -> bool:
        """True while less than the current delay has passed since `event_time`
        (e.g. when the container last finished)."""
        now = time.time() if now is None else now
        d = self.delay(key, now)
        return d > 0 and now - event_time < d

    def next(self, key: str, now: float | None = None) -> float:
        """Record an attempt now and return the delay that applies to the next one."""
        now = time.time() if now is None else now
        d = self.delay(key, now)
        d = self.base if d == 0 else min(d * 2, self.cap)
        self._entries[key] = (d, now)
        return d

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)


def go_duration(seconds: float) -> str:
    """Format like Go's time.Duration.String(): 10s, 1m20s, 5m0s, 1.5ms."""
    if seconds < 1:
        if seconds <= 0:
            return "0s"
        ms = seconds * 1000
        if ms < 1:
            return f"{seconds * 1e6:.3f}".rstrip("0").rstrip(".") + "µs"
        return f"{ms:.3f}".rstrip("0").rstrip(".") + "ms"
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    sec = f"{s:.3f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{int(h)}h{int(m)}m{sec}"
    if m:
        return f"{int(m)}m{sec}"
    return sec
