"""Pod garbage collection (upstream pkg/controller/podgc): pods bound to a Node
that no longer exists are marked Failed and force-deleted (nobody is left to
kill them gracefully), and so are terminating pods that were never scheduled (marked
Failed too, so a Job holding them by its finalizer counts them and lets go).

Periodic rather than event-driven, as upstream: a node that vanishes is given a
quarantine period and checked live before its pods are removed, so a node that
merely re-registers keeps its pods."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from kybern.client.http import Client
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import NODES, PODS
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

GC_PERIOD = 20.0  # upstream gcCheckPeriod
QUARANTINE = 40.0  # upstream quarantineTime


class PodGC:
    name = "podgc"

    def __init__(self, client: Client, informers: InformerFactory, *,
                 period: float = GC_PERIOD, quarantine: float = QUARANTINE) -> None:
        self.client = client
        self.pods = informers.informer(PODS)
        self.nodes = informers.informer(NODES)
        self.period = period
        self.quarantine = quarantine
        self._missing_since: dict[str, float] = {}

    async def run(self) -> None:
        await asyncio.gather(self.pods.wait_synced(), self.nodes.wait_synced())
        while True:
            try:
                await self.gc_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod gc pass failed")
            await asyncio.sleep(self.period)

    async def gc_once(self) -> None:
        now = time.monotonic()
        for pod in list(self.pods.list()):
            node = pod.get("spec", {}).get("nodeName")
            if not node:
                if meta.is_deleting(pod):
                    await self._force_delete(pod, None)
                continue
            if self.nodes.get(node) is not None:
                self._missing_since.pop(node, None)
                continue
            first = self._missing_since.setdefault(node, now)
            if now - first < self.quarantine:
                continue
            if await self._node_exists(node):
                self._missing_since.pop(node, None)
                continue
            await self._force_delete(pod, "PodGC: node no longer exists")

    async def _node_exists(self, name: str) -> bool:
        try:
            await self.client.get(NODES, name)
            return True
        except errors.StatusError as e:
            if e.code == 404:
                return False
            raise

    async def _force_delete(self, pod: dict[str, Any], message: str | None) -> None:
        m = pod["metadata"]
        ns = m.get("namespace")
        # Failed first (markFailedAndDeletePod), with the DisruptionTarget condition for an
        # orphaned pod: a Job that replaces only Failed pods, or holds its finalizer, sees it
        if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            status: dict[str, Any] = {"phase": "Failed"}
            if message:
                status["conditions"] = [{"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                                         "message": message, "lastTransitionTime": meta.now()}]
            try:
                await self.client.patch(PODS, m["name"], {"status": status},
                                        ns, patch_type="strategic", subresource="status")
            except errors.StatusError as e:
                log.debug("podgc: cannot mark %s/%s failed: %s", ns, m["name"], e)
        try:
            await self.client.delete(PODS, m["name"], ns, grace_period_seconds=0,
                                     preconditions={"uid": m["uid"]})
        except errors.StatusError as e:
            if e.code not in (404, 409):
                raise
