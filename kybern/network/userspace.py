"""The userspace service proxy: used when the kernel cannot be told (no root, or
neither nft nor iptables works). An asyncio TCP forwarder per Service address.

Addresses (all on loopback, so no root is needed — Linux routes all of
127.0.0.0/8 to `lo`):
- a ClusterIP `10.X.a.b` is answered on `127.X.a.b` (same port): 10.96.0.10:80
  is reachable as 127.96.0.10:80;
- a NodePort on the node's address (`--address`, 127.0.0.1 by default);
- a LoadBalancer ingress IP (127.240.0.N from servicelb.py) on itself.

Each accepted connection goes to one endpoint picked at random (or the client's
previous one with `sessionAffinity: ClientIP`) and bytes are copied both ways
until either side closes. TCP only. Listeners use SO_REUSEPORT, so two node
agents on one machine can both serve the same Service.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time

from kybern.network.proxy_rules import ServicePort

log = logging.getLogger(__name__)


def loopback_for(cluster_ip: str) -> str:
    """Where the userspace proxy answers for a cluster IP: 10.X.a.b -> 127.X.a.b."""
    a = ipaddress.ip_address(cluster_ip).packed
    return str(ipaddress.IPv4Address(bytes([127]) + a[1:]))


class _Frontend:
    """One listening address; forwards to the endpoints of the ServicePort it holds."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sp: ServicePort | None = None
        self.server: asyncio.base_events.Server | None = None
        self.affinity: dict[str, tuple[tuple[str, int], float]] = {}
        self.conns: set[asyncio.Task[None]] = set()

    def pick(self, client_ip: str) -> tuple[str, int] | None:
        sp = self.sp
        if sp is None or not sp.endpoints:
            return None
        if sp.affinity:
            prev = self.affinity.get(client_ip)
            if prev and prev[0] in sp.endpoints and time.monotonic() - prev[1] < sp.affinity:
                self.affinity[client_ip] = (prev[0], time.monotonic())
                return prev[0]
        ep = random.choice(sp.endpoints)
        if sp.affinity:
            self.affinity[client_ip] = (ep, time.monotonic())
        return ep

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.conns.add(task)
        peer = writer.get_extra_info("peername") or ("", 0)
        try:
            ep = self.pick(peer[0])
            if ep is None:
                return  # no endpoints: close at once (the kernel proxy rejects)
            try:
                up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*ep), 5)
            except (OSError, TimeoutError) as e:
                log.debug("proxy %s:%d -> %s:%d: %s", self.host, self.port, *ep, e)
                return
            await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer), return_exceptions=True)
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self.conns.discard(task)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while chunk := await src.read(65536):
            dst.write(chunk)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (ConnectionError, OSError):
        pass


class UserspaceProxy:
    def __init__(self, node_address: str = "127.0.0.1") -> None:
        self.node_address = node_address
        self.frontends: dict[tuple[str, int], _Frontend] = {}

    def addresses(self, sp: ServicePort) -> list[tuple[str, int]]:
        out = [(loopback_for(ip), sp.port) for ip in sp.cluster_ips]
        out += [(ip, sp.port) for ip in sp.lb_ips if ip.startswith("127.")]
        if sp.node_port:
            out.append((self.node_address, sp.node_port))
        return out

    async def sync(self, ports: list[ServicePort]) -> None:
        want: dict[tuple[str, int], ServicePort] = {}
        for sp in ports:
            if sp.protocol != "tcp":
                continue
            for addr in self.addresses(sp):
                want[addr] = sp
        for addr in [a for a in self.frontends if a not in want]:
            await self._close(self.frontends.pop(addr))
        for addr, sp in want.items():
            fe = self.frontends.get(addr)
            if fe is None:
                fe = _Frontend(*addr)
                try:
                    fe.server = await asyncio.start_server(fe.handle, addr[0], addr[1], reuse_port=True,
                                                           backlog=1024)
                except OSError as e:
                    log.warning("userspace proxy: cannot listen on %s:%d for %s: %s", *addr, sp.key, e)
                    continue
                self.frontends[addr] = fe
            fe.sp = sp  # endpoints change in place: open listeners keep serving

    async def _close(self, fe: _Frontend) -> None:
        if fe.server is not None:
            fe.server.close()
        for t in list(fe.conns):
            t.cancel()

    async def stop(self) -> None:
        for fe in list(self.frontends.values()):
            await self._close(fe)
        self.frontends.clear()
