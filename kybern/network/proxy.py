"""The service proxy (kybern's kube-proxy): one per node agent, an API client
watching Services and EndpointSlices (discovery.k8s.io/v1, joined by the label
`kubernetes.io/service-name`) and making Service addresses lead to endpoints.

Modes (`--proxy-mode`, default `auto`):
- `nftables`: a table `ip kybern-<id>` replaced whole by one `nft -f` per
  change (proxy_rules.render_nft), so existing connections and routes never
  see a gap; DNAT in prerouting (pods) and output (host processes).
- `iptables`: the same with `iptables-restore --noflush` on chains `KYB<id>-*`.
- `userspace`: an asyncio TCP forwarder on loopback (userspace.py); no root.
- `auto`: nftables when root and `nft` works, else iptables when root and
  `iptables-restore` works, else userspace. Said once in the log.

Level-triggered: any change marks the proxy dirty; one sync computes the whole
desired state from the caches and applies it (coalescing bursts, at most one
sync per `min_sync_interval`).
"""

from __future__ import annotations

import asyncio
import json
import contextlib
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from kybern.client.dirtyloop import sync_when_dirty
from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.resources import ENDPOINTSLICES, SERVICES
from kybern.network import proxy_rules as rules
from kybern.network.healthcheck import HealthCheckServers, wanted
from kybern.network.nft import hold_lock, remove_orphan_tables
from kybern.network.nft import run as _run
from kybern.network.podnet import CLUSTER_CIDR
from kybern.network.userspace import UserspaceProxy

log = logging.getLogger(__name__)

SERVICE_CIDR = os.environ.get("KYBERN_SERVICE_CIDR", "10.96.0.0/12")
OWNER_DIR = Path(os.environ.get("KYBERN_PROXY_LOCKS", "/run/kybern/proxy"))


async def choose_mode(requested: str) -> tuple[str, str]:
    """(mode, why) for `auto`; a requested mode is returned as it is."""
    if requested != "auto":
        return requested, "requested"
    if os.geteuid() != 0:
        return "userspace", "not running as root"
    if shutil.which("nft") and (await _run("nft", "list", "tables"))[0] == 0:
        return "nftables", "nft works"
    if shutil.which("iptables-restore") and (await _run("iptables", "-t", "nat", "-S"))[0] == 0:
        return "iptables", "nft unavailable, iptables works"
    return "userspace", "neither nft nor iptables works"


def _sysctl(path: str, value: str) -> bool:
    try:
        Path("/proc/sys", path).write_text(value)
        return True
    except OSError:
        return False


class ServiceProxy:
    min_sync_interval = 0.05

    def __init__(self, client: Client, *, instance: str, mode: str = "auto", node_address: str = "127.0.0.1",
                 cluster_cidr: str = CLUSTER_CIDR, service_cidr: str = SERVICE_CIDR,
                 pod_cidr_file: str | None = None, node_name: str | None = None) -> None:
        if mode not in ("auto", "nftables", "iptables", "userspace"):
            raise ValueError(f"--proxy-mode must be auto, nftables, iptables or userspace, not {mode!r}")
        self.client = client
        self.requested = mode
        self.mode = ""
        # one table per proxy instance (several clusters and agents may share a kernel)
        self.id = hashlib.sha1(instance.encode()).hexdigest()[:8]
        self.table = f"kybern-{self.id}"
        self.node_address = node_address
        self.cluster_cidr, self.service_cidr = cluster_cidr, service_cidr
        self.pod_cidr_file = pod_cidr_file  # the node's pod network state (podnet.py), where its podCIDR is
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, ENDPOINTSLICES)
        self.userspace: UserspaceProxy | None = None
        # externalTrafficPolicy: Local health checks, for the node this proxy serves
        self.node_name = node_name
        self.health = HealthCheckServers(node_address) if node_name else None
        self.ports: list[rules.ServicePort] = []
        self.synced = asyncio.Event()  # the first sync is done
        self.last_sync = 0.0  # time.time() of the last applied change
        self.syncs = 0
        self._dirty = asyncio.Event()
        self._last_applied: str | None = None
        self._hooked = False
        self._owner_fd: int | None = None

    def _changed(self, *_: Any) -> None:
        self._dirty.set()

    async def run(self) -> None:
        """Until cancelled; the rules are removed when it ends."""
        self.mode, why = await choose_mode(self.requested)
        log.warning("service proxy: %s mode (%s)", self.mode, why) if self.mode == "userspace" else \
            log.info("service proxy: %s mode (%s)", self.mode, why)
        if self.mode == "userspace":
            self.userspace = UserspaceProxy(self.node_address)
        else:
            await self._own_table()
            _sysctl("net/ipv4/ip_forward", "1")
            _sysctl("net/ipv4/conf/all/route_localnet", "1")  # NodePorts on 127.0.0.1, as kube-proxy
            _sysctl("net/bridge/bridge-nf-call-iptables", "1")  # pod -> Service -> pod on one bridge
        for inf in (self.services, self.slices):
            inf.add_handler(self._changed)
            inf.start()
        try:
            await asyncio.gather(self.services.wait_synced(), self.slices.wait_synced())
            self._dirty.set()
            await sync_when_dirty(self._dirty, self.sync, "service proxy sync",
                                  pause=lambda took: self.min_sync_interval)
        finally:  # awaited, not shielded: the cleanup must finish before the loop closes
            await self._cleanup()

    def _pod_cidr(self) -> str | None:
        """The node's pod CIDR once its agent has claimed one (a CNI pod network); until
        then the rules are looked at again every 5 s."""
        if not self.pod_cidr_file:
            return None
        try:
            with open(self.pod_cidr_file) as f:
                return json.load(f).get("podCIDR") or None
        except (OSError, ValueError):
            asyncio.get_running_loop().call_later(5.0, self._dirty.set)
            return None

    async def sync(self) -> None:
        self.ports = rules.build(self.services.list(), self.slices.list(), self.node_name)
        pod_cidr = self._pod_cidr()
        if self.mode == "userspace":
            assert self.userspace is not None
            await self.userspace.sync(self.ports)
        elif self.mode == "nftables":
            script = rules.render_nft(self.table, self.ports, self.cluster_cidr, self.service_cidr, pod_cidr)
            if script != self._last_applied:
                rc, out = await _run("nft", "-f", "-", stdin=script.encode())
                if rc != 0:
                    raise RuntimeError(f"nft -f failed: {out.strip()[:500]}")
                self._last_applied = script
        else:
            script = rules.render_iptables(f"KYB{self.id}", self.ports, self.cluster_cidr, self.service_cidr,
                                           pod_cidr)
            if script != self._last_applied:
                rc, out = await _run("iptables-restore", "--noflush", stdin=script.encode())
                if rc != 0:
                    raise RuntimeError(f"iptables-restore failed: {out.strip()[:500]}")
                self._last_applied = script
                await self._hook_iptables()
        if self.health is not None and self.node_name:
            await self.health.sync(wanted(self.services.list(), self.slices.list(), self.node_name))
        self.syncs += 1
        self.last_sync = time.time()
        self.synced.set()

    async def _own_table(self) -> None:
        """Hold /run/kybern/proxy/<id>.lock while our rules exist, and delete the
        nft tables of proxies that died without cleaning up (no lock holder)."""
        self._owner_fd = hold_lock(OWNER_DIR, self.id)
        if self.mode == "nftables":
            await remove_orphan_tables("ip", "kybern-", OWNER_DIR, self.table, "service proxy")

    async def _hook_iptables(self) -> None:
        if self._hooked:
            return
        for table, chain, ours in rules.iptables_hooks(f"KYB{self.id}"):
            if (await _run("iptables", "-t", table, "-C", chain, "-j", ours))[0] != 0:
                await _run("iptables", "-t", table, "-I", chain, "1", "-j", ours)
        self._hooked = True

    async def _cleanup(self) -> None:
        if self.health is not None:
            await self.health.close()
        for inf in (self.services, self.slices):
            with contextlib.suppress(Exception):
                await inf.stop()
        if self.mode == "userspace" and self.userspace is not None:
            await self.userspace.stop()
        elif self.mode == "nftables":
            await _run("nft", "-f", "-", stdin=rules.nft_cleanup(self.table).encode())
        elif self.mode == "iptables":
            P = f"KYB{self.id}"
            for table, chain, ours in rules.iptables_hooks(P):
                await _run("iptables", "-t", table, "-D", chain, "-j", ours)
            for table in ("nat", "filter"):
                _rc, out = await _run("iptables", "-t", table, "-S")
                for line in out.splitlines():
                    if line.startswith(f"-N {P}"):
                        await _run("iptables", "-t", table, "-F", line.split()[1])
                for line in out.splitlines():
                    if line.startswith(f"-N {P}"):
                        await _run("iptables", "-t", table, "-X", line.split()[1])
        if self._owner_fd is not None:  # released once our rules are gone
            os.close(self._owner_fd)
            self._owner_fd = None
