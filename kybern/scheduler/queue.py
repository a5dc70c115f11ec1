"""The scheduling queue (upstream pkg/scheduler/internal/queue): three places a
pending pod can wait.

- activeQ: ready to try, highest priority first, then oldest;
- backoffQ: failed recently, waits 1s, 2s, 4s ... up to 10s per attempt;
- unschedulable: failed and nothing has changed since; a cluster event (a node
  added or updated, an assigned pod deleted) moves them back (to backoffQ if
  their backoff has not expired), and none waits more than 5 minutes.

A pod that failed while a cluster event arrived during its own attempt goes to
backoffQ instead of unschedulable, so the event is not lost.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass, field

from kybern.scheduler.framework import PodInfo

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_UNSCHEDULABLE = 300.0  # podMaxInUnschedulablePodsDuration


@dataclass
class QueuedPod:
    info: PodInfo
    timestamp: float = field(default_factory=time.monotonic)
    attempts: int = 0
    failed_at: float = 0.0

    @property
    def key(self) -> str:
        return self.info.key

    def backoff_expiry(self) -> float:
        if self.attempts == 0:
            return 0.0
        d = min(INITIAL_BACKOFF * (2 ** (self.attempts - 1)), MAX_BACKOFF)
        return self.failed_at + d


class SchedulingQueue:
    def __init__(self) -> None:
        self._seq = itertools.count()
        self._active: list[tuple[int, float, int, str]] = []
        self._backoff: list[tuple[float, int, str]] = []
        self._where: dict[str, str] = {}  # key -> "active" | "backoff" | "unschedulable" | "flight"
        self._pods: dict[str, QueuedPod] = {}
        self._ready = asyncio.Event()
        self.cycle = 0
        self._move_cycle = -1
        self._wakeup: asyncio.TimerHandle | None = None
        # unschedulable pods that another pod's arrival may help (pod affinity, spread)
        self._pod_waiters: set[str] = set()

    def __len__(self) -> int:
        return len(self._pods)

    # -- adding ---------------------------------------------------------------------
    def _push_active(self, qp: QueuedPod) -> None:
        self._where[qp.key] = "active"
        heapq.heappush(self._active, (-qp.info.priority, qp.timestamp, next(self._seq), qp.key))
        self._ready.set()

    def _push_backoff(self, qp: QueuedPod) -> None:
        self._where[qp.key] = "backoff"
        heapq.heappush(self._backoff, (qp.backoff_expiry(), next(self._seq), qp.key))
        self._arm_timer()

    def add(self, info: PodInfo) -> None:
        """A new pending pod, or an update to one we hold."""
        qp = self._pods.get(info.key)
        if qp is None:
            qp = self._pods[info.key] = QueuedPod(info)
            self._push_active(qp)
            return
        qp.info = info
        if self._where.get(info.key) == "unschedulable":
            self._move(qp)  # the pod itself changed: worth another try

    def delete(self, key: str) -> None:
        self._pod_waiters.discard(key)
        self._pods.pop(key, None)
        self._where.pop(key, None)  # heap entries are dropped lazily

    def contains(self, key: str) -> bool:
        return key in self._pods

    # -- taking ---------------------------------------------------------------------
    def pop_nowait(self) -> QueuedPod | None:
        self._flush_backoff()
        while self._active:
            _, _, _, key = heapq.heappop(self._active)
            if self._where.get(key) != "active":
                continue
            self._where[key] = "flight"
            self.cycle += 1
            qp = self._pods[key]
            qp.attempts += 1
            return qp
        self._ready.clear()
        return None

    async def pop(self) -> QueuedPod:
        while True:
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            await self._ready.wait()

    def done(self, key: str) -> None:
        """Scheduled (or gone): stop tracking."""
        if self._where.get(key) == "flight":
            self.delete(key)

    def requeue_failed(self, qp: QueuedPod, cycle: int, *, error: bool = False,
                       waits_for_pods: bool = False) -> None:
        """After a failed attempt: unschedulable, or backoffQ when the cluster changed
        during the attempt (or the failure was an error, not a verdict).
        `waits_for_pods`: a pod assigned somewhere may make it fit (pod affinity,
        topology spread), see move_pod_waiters."""
        if qp.key not in self._pods or self._where.get(qp.key) != "flight":
            return
        qp.failed_at = time.monotonic()
        if error or self._move_cycle >= cycle:
            self._push_backoff(qp)
        else:
            self._where[qp.key] = "unschedulable"
            if waits_for_pods:
                self._pod_waiters.add(qp.key)

    # -- cluster events -------------------------------------------------------------
    def move_all(self) -> None:
        self._move_cycle = self.cycle
        for key, where in list(self._where.items()):
            if where == "unschedulable":
                self._move(self._pods[key])

    def move_pod_waiters(self) -> None:
        """A pod was assigned (or an assigned pod relabelled): retry the unschedulable
        pods its presence may help (upstream's AssignedPodAdd for InterPodAffinity and
        PodTopologySpread); the others stay put."""
        if not self._pod_waiters:
            return
        for key in self._pod_waiters:
            if self._where.get(key) == "unschedulable":
                self._move(self._pods[key])
        self._pod_waiters.clear()

    def _move(self, qp: QueuedPod) -> None:
        if qp.backoff_expiry() > time.monotonic():
            self._push_backoff(qp)
        else:
            self._push_active(qp)

    def _flush_backoff(self) -> None:
        now = time.monotonic()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key = heapq.heappop(self._backoff)
            if self._where.get(key) == "backoff":
                self._push_active(self._pods[key])

    def _arm_timer(self) -> None:
        if not self._backoff:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        when = self._backoff[0][0]
        if self._wakeup is not None and self._wakeup.when() <= when:
            return
        if self._wakeup is not None:
            self._wakeup.cancel()
        delay = max(when - time.monotonic(), 0)
        self._wakeup = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._wakeup = None
        self._flush_backoff()
        self._arm_timer()
        if self._active:
            self._ready.set()

    def periodic_flush(self) -> None:
        """Called every few seconds by the scheduler: moves long-unschedulable pods."""
        now = time.monotonic()
        for key, where in list(self._where.items()):
            if where == "unschedulable" and now - self._pods[key].failed_at > MAX_UNSCHEDULABLE:
                self._move(self._pods[key])
        self._flush_backoff()
        if self._active:
            self._ready.set()
