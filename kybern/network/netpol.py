"""The NetworkPolicy enforcer: one per node agent with a CNI pod network, beside
its service proxy. An API client watching NetworkPolicies, Pods and Namespaces;
it owns the nftables table `inet kybern-netpol-<id>` (netpol_rules.py), which
decides about this node's pods only, and replaces it whole with one `nft -f`
per change (level-triggered: any relevant change marks it dirty, one sync
renders everything from the caches, bursts coalesce). The table is removed when
it stops; one left by a killed enforcer is removed by the next to start.

Pods and Namespaces are watched only while at least one policy exists (most
clusters have none; the enforcer shares the agent's process).

Pods on the host's network (`--pod-network host`, or `hostNetwork: true`) have
no address of their own to filter: then it says once that policies are not
enforced and waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kybern.client.dirtyloop import sync_when_dirty
from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.resources import NAMESPACES, NETWORKPOLICIES, PODS
from kybern.network import netpol_rules as rules
from kybern.network.nft import delete_table, hold_lock, remove_orphan_tables, run

log = logging.getLogger(__name__)

OWNER_DIR = Path(os.environ.get("KYBERN_NETPOL_LOCKS", "/run/kybern/netpol"))
TABLE_PREFIX = "kybern-netpol-"


class PolicyEnforcer:
    min_sync_interval = 0.05

    def __init__(self, client: Client, *, instance: str, node_name: str | None,
                 pod_network: Callable[[], Awaitable[tuple[str, str | None]]]) -> None:
        """`pod_network()` waits for the node's pod network and returns its
        (mode, podCIDR): only `cni` pods are filtered."""
        self.client = client
        self.node_name = node_name
        self.pod_network = pod_network
        self.id = hashlib.sha1(instance.encode()).hexdigest()[:8]
        self.table = f"{TABLE_PREFIX}{self.id}"
        self.pod_cidr = ""
        self.policies = Informer(client, NETWORKPOLICIES)
        # pods and namespaces are watched only while some policy exists (_watch)
        self.pods: Informer | None = None
        self.namespaces: Informer | None = None
        self.enforcing = False
        self.synced = asyncio.Event()
        self.syncs = 0
        self.last_sync = 0.0
        self.isolated: list[str] = []
        self._dirty = asyncio.Event()
        self._last_applied: str | None = None
        self._owner_fd: int | None = None

    def _changed(self, *_: Any) -> None:
        self._dirty.set()

    def _pod_changed(self, _kind: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        # most pod updates are status churn (conditions, container states): skip those
        if _kind != "MODIFIED" or rules.relevant(old) != rules.relevant(new):
            self._dirty.set()

    async def run(self) -> None:
        """Until cancelled; the table is removed when it ends."""
        mode, cidr = await self.pod_network()
        if mode != "cni" or not cidr:
            log.warning("NetworkPolicy is not enforced on this node: its pods use the host's network")
            await asyncio.Event().wait()
        if os.geteuid() != 0 or not shutil.which("nft") or (await run("nft", "list", "tables"))[0] != 0:
            log.warning("NetworkPolicy is not enforced on this node: nft does not work here")
            await asyncio.Event().wait()
        if not _sysctl("net/bridge/bridge-nf-call-iptables", "1"):
            log.warning("NetworkPolicy: bridge-nf-call-iptables cannot be set (br_netfilter not loaded?): "
                        "traffic between pods on one bridge is not filtered")
        self.pod_cidr = cidr
        try:
            self._owner_fd = hold_lock(OWNER_DIR, self.id)
            await remove_orphan_tables("inet", TABLE_PREFIX, OWNER_DIR, self.table, "NetworkPolicy")
            self.enforcing = True
            log.info("NetworkPolicy: enforced for the pods of %s in table inet %s", cidr, self.table)
            self.policies.add_handler(self._changed)
            self.policies.start()
            await self.policies.wait_synced()
            self._dirty.set()

            async def step() -> None:
                await self._watch(bool(self.policies.cache))
                await self.sync()
            # at most half the time syncing: in a burst of pod starts the agent beside
            # it needs the CPU (~60 ms a sync for 100 policies x 200 pods, docs/networking.md)
            await sync_when_dirty(self._dirty, step, "NetworkPolicy sync",
                                  pause=lambda took: max(self.min_sync_interval, took))
        finally:  # awaited, not shielded: the cleanup must finish before the loop closes
            await self._cleanup()

    async def _watch(self, wanted: bool) -> None:
        """Watch every pod and namespace of the cluster only while there is a policy:
        without one nothing is filtered, and the agent beside us (in the same
        process) is spared decoding each pod update of the cluster."""
        if wanted and self.pods is None:
            self.pods, self.namespaces = Informer(self.client, PODS), Informer(self.client, NAMESPACES)
            self.pods.add_handler(self._pod_changed)
            self.namespaces.add_handler(self._changed)
            self.pods.start()
            self.namespaces.start()
            await asyncio.gather(self.pods.wait_synced(), self.namespaces.wait_synced())
        elif not wanted and self.pods is not None:
            await self._stop_watching()

    async def _stop_watching(self) -> None:
        for inf in (self.pods, self.namespaces):
            if inf is not None:
                with contextlib.suppress(Exception):
                    await inf.stop()
        self.pods = self.namespaces = None

    def render(self) -> str:
        plan = rules.build(self.policies.list(), self.pods.list() if self.pods else [],
                           self.namespaces.list() if self.namespaces else [],
                           pod_cidr=self.pod_cidr, node_name=self.node_name)
        self.isolated = plan.isolated
        return rules.render_nft(self.table, plan)

    async def sync(self) -> None:
        script = self.render()
        if script != self._last_applied:
            rc, out = await run("nft", "-f", "-", stdin=script.encode())
            if rc != 0:
                raise RuntimeError(f"nft -f failed: {out.strip()[:500]}")
            self._last_applied = script
            log.debug("NetworkPolicy: %d isolated pods", len(self.isolated))
        self.syncs += 1
        self.last_sync = time.time()
        self.synced.set()

    async def _cleanup(self) -> None:
        with contextlib.suppress(Exception):
            await self.policies.stop()
        await self._stop_watching()
        if self.enforcing:
            await run("nft", "-f", "-", stdin=delete_table("inet", self.table).encode())
        if self._owner_fd is not None:  # released once our table is gone
            os.close(self._owner_fd)
            self._owner_fd = None


def _sysctl(path: str, value: str) -> bool:
    try:
        Path("/proc/sys", path).write_text(value)
        return True
    except OSError:
        return False
