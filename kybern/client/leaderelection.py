"""Leader election over a coordination.k8s.io/v1 Lease, as client-go's
leaderelection package does it for kube-scheduler and kube-controller-manager:
of several processes running the same component, one holds the Lease and works;
the others wait and take over when it stops renewing.

The Lease (`kube-system/<name>`) records `holderIdentity`, `leaseDurationSeconds`,
`acquireTime`, `renewTime` and `leaseTransitions`. A candidate takes it when it
does not exist, when it holds it already, or when its record has not changed for
`lease_duration` by the candidate's own clock (client-go's observedTime: clocks of
different machines are never compared). Writes are guarded by resourceVersion,
so two candidates cannot both win. The leader renews every `retry_period`; if it
cannot for `renew_deadline` it stops its work and becomes a candidate again
(client-go's components exit there and are restarted; here the work is cancelled).
On a clean stop the Lease is released (holder cleared, duration 1 s: client-go's
ReleaseOnCancel) so a successor need not wait out the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from kybern.client.http import Client
from kybern.client.resources import LEASES
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"


def default_identity() -> str:
    """client-go's: the host's name and a fresh UUID, unique per process."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeaderElector:
    def __init__(self, client: Client, name: str, *, identity: str | None = None, namespace: str = NAMESPACE,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0) -> None:
        self.check_timing(lease_duration, renew_deadline, retry_period)
        self.client, self.name, self.namespace = client, name, namespace
        self.identity = identity or default_identity()
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self._observed: tuple[Any, ...] = ()
        self._observed_at = 0.0
        self.leading = False

    @staticmethod
    def check_timing(lease_duration: float, renew_deadline: float, retry_period: float) -> None:
        """client-go's NewLeaderElector checks (with its JitterFactor 1.2)."""
        if lease_duration <= renew_deadline:
            raise ValueError("leaseDuration must be greater than renewDeadline")
        if renew_deadline <= 1.2 * retry_period:
            raise ValueError("renewDeadline must be greater than retryPeriod*JitterFactor")
        if lease_duration <= 0 or renew_deadline <= 0 or retry_period <= 0:
            raise ValueError("leaseDuration, renewDeadline and retryPeriod must be greater than zero")

    async def run(self, work: Callable[[], Awaitable[Any]]) -> Any:
        """Acquire the Lease, then run `work()` while renewing it; on losing it,
        cancel the work and try again. When the work ends or crashes (which
        propagates), or this is cancelled, the Lease is released."""
        try:
            while True:
                while not await self._try_acquire_or_renew():
                    await asyncio.sleep(self.retry_period * random.uniform(1.0, 1.2))  # client-go's jitter
                self.leading = True
                log.info("%s: %s became the leader", self.name, self.identity)
                task = asyncio.ensure_future(work())
                try:
                    renewed = time.monotonic()
                    while True:
                        done, _ = await asyncio.wait({task}, timeout=self.retry_period)
                        if done:
                            return task.result()  # the work ended (or raised): so does leading
                        if await self._try_acquire_or_renew():
                            renewed = time.monotonic()
                        elif time.monotonic() - renewed > self.renew_deadline:
                            log.warning("%s: %s lost the lease (not renewed for %.0f s)", self.name, self.identity,
                                        self.renew_deadline)
                            break
                finally:
                    self.leading = False
                    if not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
        finally:  # stopped, cancelled or crashed: let a successor in at once
            await asyncio.shield(self._release())

    async def _try_acquire_or_renew(self) -> bool:
        now = meta.now_micro()
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except errors.StatusError as e:
            if e.code != 404:
                log.debug("%s: reading the lease: %s", self.name, e)
                return False
            try:
                await self.client.create(LEASES, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": round(self.lease_duration),
                             "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}, self.namespace)
                return True
            except Exception:  # noqa: BLE001 -- another candidate made it first, or the API is unreachable
                return False
        except Exception as e:  # noqa: BLE001 -- the API unreachable: not now
            log.debug("%s: reading the lease: %r", self.name, e)
            return False
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("acquireTime"), spec.get("leaseDurationSeconds"))
        if record != self._observed:  # its record changed: the lease runs from now, by this clock
            self._observed, self._observed_at = record, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and time.monotonic() < self._observed_at + duration:
            return False
        mine = holder == self.identity
        new_spec = {**spec, "holderIdentity": self.identity, "leaseDurationSeconds": round(self.lease_duration),
                    "renewTime": now,
                    "acquireTime": spec.get("acquireTime") if mine else now,
                    "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)}
        try:
            out = await self.client.update(LEASES, {**lease, "spec": new_spec})
        except Exception as e:  # noqa: BLE001 -- a conflict (another won) or the API unreachable: not now
            log.debug("%s: updating the lease: %r", self.name, e)
            return False
        s = out.get("spec") or {}
        self._observed = (s.get("holderIdentity"), s.get("renewTime"), s.get("acquireTime"),
                          s.get("leaseDurationSeconds"))
        self._observed_at = time.monotonic()
        return True

    async def _release(self) -> None:
        """Give the Lease up if this process holds it (best effort, bounded)."""
        try:
            async with asyncio.timeout(3):
                lease = await self.client.get(LEASES, self.name, self.namespace)
                spec = lease.get("spec") or {}
                if spec.get("holderIdentity") != self.identity:
                    return
                now = meta.now_micro()
                await self.client.update(LEASES, {**lease, "spec": {
                    "leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now,
                    "leaseTransitions": spec.get("leaseTransitions", 0)}})
                log.info("%s: %s released the lease", self.name, self.identity)
        except Exception as e:  # noqa: BLE001 -- the successor waits out the lease instead
            log.debug("%s: releasing the lease: %r", self.name, e)
