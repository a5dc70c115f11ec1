"""Periodic compaction of the storage history, as kube-apiserver does it
(staging/src/k8s.io/apiserver/pkg/storage/etcd3/compact.go): every interval
(default 5 minutes, upstream's --etcd-compaction-interval), compact to the
revision seen at the previous tick. So a watch or a paginated list may always
resume from any revision of at least the last interval; older ones get
410 Expired and the client re-lists.

It goes through the Store protocol, so it works on every backend. Several
apiservers sharing one etcd may each run it: compacting to a revision that is
already compacted is a no-op on both backends.
"""

from __future__ import annotations

import asyncio
import logging

from kybern.storage.interface import StorageError, Store

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 300.0


async def compact_once(store: Store, last: int) -> int:
    """One tick: compact to `last` (the revision seen a tick ago, 0 = none yet)
    and return the revision to compact to at the next tick."""
    current = await store.current_revision()
    if last and last < current:
        await store.compact(last)
        log.info("compacted storage history up to revision %d", last)
    return current


async def run_compactor(store: Store, interval: float = DEFAULT_INTERVAL) -> None:
    """Compact forever; a failed tick is logged and retried at the next one."""
    last = 0
    while True:
        await asyncio.sleep(interval)
        try:
            last = await compact_once(store, last)
        except StorageError as e:
            log.warning("compaction failed (will retry in %.0fs): %s", interval, e)
