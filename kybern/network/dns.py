"""Cluster DNS, kybern's CoreDNS: an API client that watches Services and
EndpointSlices and answers DNS queries for the cluster zone over UDP and TCP
(records: dns_records.py). Names outside the zone are forwarded to the host's
resolvers (/etc/resolv.conf), or REFUSED when there are none.

It publishes itself as upstream's cluster DNS is found: the Service
`kube-system/kube-dns` (clusterIP 10.96.0.10, ports dns 53/UDP and dns-tcp
53/TCP, label k8s-app=kube-dns) with Endpoints and an EndpointSlice pointing
at the address and port it actually listens on, so a service proxy can send
10.96.0.10:53 there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode

from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.informer_factory import InformerFactory, Registrations
from kybern.client.resources import ENDPOINTS, ENDPOINTSLICES, SERVICES
from kybern.machinery import errors
from kybern.network.dns_records import ClusterRecords
from kybern.network.resolvconf import CLUSTER_DNS_IP

log = logging.getLogger(__name__)

DEFAULT_PORT = 1053  # unprivileged; 53 needs root and is often taken by the host's resolver
MANAGED_BY = "cluster-dns.kybern.io"
FORWARD_TIMEOUT = 2.0
IP_FREEBIND = 15  # linux/in.h; the socket module does not export it


def host_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] == "nameserver":
            out.append(f[1])
    return out


class DNSServer:
    """`start()` binds UDP and TCP on one port (falling back to a free port if
    the asked one is taken, unless `strict`), then serves until `stop()`."""

    def __init__(self, client: Client | None, *, address: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 domain: str = "cluster.local", upstreams: list[str] | None = None, ttl: int = 5,
                 advertise: str | None = None, strict: bool = False,
                 informers: InformerFactory | None = None) -> None:
        """`informers`: a factory shared with other components of the process (its
        owner stops it); by default the server has its own."""
        self.client = client
        self._shared = informers is not None
        self.factory = informers if informers is not None else (
            InformerFactory(client) if client is not None else None)
        self.address = address
        self.port = port
        self.strict = strict
        self.advertise = advertise
        self.records = ClusterRecords(domain, ttl)
        self.upstreams = [u for u in (host_nameservers() if upstreams is None else upstreams)
                          if not (u == address and port == 53)]  # never forward to ourselves
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._informers: list[Informer] = []
        self._registered: Registrations = set()

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self._bind()
        if self.factory is not None:
            with self.factory.recording() as self._registered:
                svc = self.factory.informer(SERVICES)
                svc.add_handler(self._on_service)
                sl = self.factory.informer(ENDPOINTSLICES)
                sl.add_handler(self._on_slice)
            self._informers = [svc, sl]
            self.factory.start()
        log.info("cluster DNS listening on %s:%d (udp+tcp)", self.address, self.port)

    def _on_service(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ == "DELETED":
            self.records.delete_service(new)
        else:
            self.records.set_service(new)

    def _on_slice(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if old is not None:
            self.records.delete_slice(old)
        if typ != "DELETED":
            self.records.set_slice(new)

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self._informers))

    async def stop(self) -> None:
        if self.factory is not None:
            await self.factory.release(self._registered, shared=self._shared)
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        for attempt in range(20):
            port = self.port if attempt == 0 else 0
            try:
                udp_sock = _socket(self.address, port, socket.SOCK_DGRAM)
            except OSError as e:
                if self.strict:
                    raise
                log.warning("cluster DNS: %s:%d is taken (%s); using a free port", self.address, port,
                            e.strerror)
                continue
            port = udp_sock.getsockname()[1]
            try:
                tcp_sock = _socket(self.address, port, socket.SOCK_STREAM)
            except OSError as e:
                udp_sock.close()
                if self.strict:
                    raise
                log.warning("cluster DNS: tcp %s:%d is taken (%s); trying another port", self.address,
                            port, e.strerror)
                continue
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp_sock)
            transport, _ = await loop.create_datagram_endpoint(lambda: _UDP(self), sock=udp_sock)
            self._udp = transport  # type: ignore[assignment]
            self.port = port
            return
        raise OSError(f"cluster DNS: no free port on {self.address}")

    # -- serving ------------------------------------------------------------------------
    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), 10)
                wire = await reader.readexactly(int.from_bytes(head, "big"))
                out = await self.handle(wire, tcp=True)
                if out:
                    writer.write(len(out).to_bytes(2, "big") + out)
                    await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def handle(self, wire: bytes, *, tcp: bool = False) -> bytes | None:
        """One query in wire format -> the response in wire format (None: drop it)."""
        try:
            q = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None
        except Exception:  # noqa: BLE001 - a malformed query gets FORMERR, as any server
            return _formerr(wire)
        if q.opcode() != dns.opcode.QUERY or len(q.question) != 1:
            r = dns.message.make_response(q)
            r.set_rcode(dns.rcode.NOTIMP if q.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
            return r.to_wire()
        question = q.question[0]
        ans = self.records.lookup(question.name, question.rdtype)
        if ans is None:
            return await self._forward(q, tcp)
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        if self.upstreams:
            r.flags |= dns.flags.RA
        r.set_rcode(ans.rcode)
        r.answer.extend(ans.answer)
        r.authority.extend(ans.authority)
        r.additional.extend(ans.additional)
        return _render(r, q, tcp)

    async def _forward(self, q: dns.message.Message, tcp: bool) -> bytes:
        if not self.upstreams:
            r = dns.message.make_response(q)
            r.set_rcode(dns.rcode.REFUSED)
            return r.to_wire()
        for server in self.upstreams:
            try:
                if tcp:
                    resp = await dns.asyncquery.tcp(q, server, timeout=FORWARD_TIMEOUT)
                else:
                    resp = await dns.asyncquery.udp(q, server, timeout=FORWARD_TIMEOUT,
                                                    ignore_trailing=True, raise_on_truncation=False)
                return _render(resp, q, tcp)
            except (dns.exception.DNSException, OSError) as e:
                log.debug("forwarding %s to %s failed: %r", q.question[0].name, server, e)
        r = dns.message.make_response(q)
        r.set_rcode(dns.rcode.SERVFAIL)
        return r.to_wire()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        asyncio.get_running_loop().create_task(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: Any) -> None:
        try:
            out = await self.server.handle(data)
        except Exception:  # one bad query must not stop the server
            log.exception("cluster DNS: query failed")
            return
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)


def _socket(address: str, port: int, kind: int) -> socket.socket:
    """A bound socket. IP_FREEBIND lets it bind an address that is not up yet: a
    node's pod bridge gets its gateway address only when its first pod starts."""
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sys.platform.startswith("linux") and ":" not in address:
            sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _render(r: dns.message.Message, q: dns.message.Message, tcp: bool) -> bytes:
    """The response's wire form, truncated (TC set, sections dropped) if it does
    not fit the client's UDP size (512, or its EDNS payload size)."""
    limit = 65535 if tcp else max(512, q.payload if q.edns >= 0 else 512)
    try:
        return r.to_wire(max_size=limit)
    except dns.exception.TooBig:
        t = dns.message.make_response(q)
        t.set_rcode(r.rcode())
        t.flags |= dns.flags.TC | (r.flags & (dns.flags.AA | dns.flags.RA))
        return t.to_wire()


def _formerr(wire: bytes) -> bytes | None:
    if len(wire) < 12:
        return None
    flags = 0x8000 | (int.from_bytes(wire[2:4], "big") & 0x7900) | dns.rcode.FORMERR
    return wire[:2] + flags.to_bytes(2, "big") + b"\x00" * 8


async def serve_cluster_dns(client: Client, *, address: str = "127.0.0.1", port: int = DEFAULT_PORT,
                            advertise: str | None = None,
                            node_gateway: Callable[[], Awaitable[str | None]] | None = None,
                            informers: InformerFactory | None = None) -> None:
    """What `kybern up` runs: the DNS server on address:port and, as root on a node
    whose pods have their own network (a bridge), also on the bridge's gateway
    address port 53, which pods can reach; kube-dns then points there."""
    main = DNSServer(client, address=address, port=port, advertise=advertise, informers=informers)
    extra: DNSServer | None = None
    await main.start()
    try:
        await main.wait_synced()
        target = (main.advertise or main.address, main.port)
        if node_gateway is not None and os.geteuid() == 0:
            gateway = None
            for _ in range(20):  # the agent sets its pod network up as it starts
                gateway = await node_gateway()
                if gateway:
                    break
                await asyncio.sleep(0.5)
            if gateway:
                extra = DNSServer(None, address=gateway, port=53, strict=True)
                extra.records, extra.upstreams = main.records, main.upstreams
                try:
                    await extra.start()
                    target = (gateway, 53)
                except OSError as e:
                    log.warning("cluster DNS: cannot listen on %s:53 for pods (%s)", gateway, e)
                    extra = None
        await publish(client, *target)
        await asyncio.Event().wait()
    finally:
        if extra is not None:
            await extra.stop()
        await main.stop()


# -- kube-dns ------------------------------------------------------------------------------
async def publish(client: Client, ip: str, port: int, *, cluster_ip: str = CLUSTER_DNS_IP) -> None:
    """Create kube-system/kube-dns and point its Endpoints and EndpointSlice at ip:port."""
    ns, name = "kube-system", "kube-dns"
    labels = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
    try:
        svc = await client.get(SERVICES, name, ns)
    except errors.StatusError as e:
        if e.code != 404:
            raise
        body = {"metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": {"clusterIP": cluster_ip, "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}}
        try:
            svc = await client.create(SERVICES, body, ns)
        except errors.StatusError as e2:
            if e2.reason == "AlreadyExists":
                svc = await client.get(SERVICES, name, ns)
            elif e2.reason == "Invalid":  # the address is taken: take any
                log.warning("kube-dns: cannot use cluster IP %s (%s); allocating one", cluster_ip, e2)
                del body["spec"]["clusterIP"]
                svc = await client.create(SERVICES, body, ns)
            else:
                raise
    ports = [{"name": "dns", "port": port, "protocol": "UDP"}, {"name": "dns-tcp", "port": port, "protocol": "TCP"}]
    subsets = [{"addresses": [{"ip": ip}], "ports": ports}]
    await _put(client, ENDPOINTS, ns, name, {"metadata": {"name": name, "namespace": ns, "labels": labels},
                                             "subsets": subsets}, lambda cur: cur.get("subsets") == subsets)
    owner = {"apiVersion": "v1", "kind": "Service", "name": name, "uid": svc["metadata"]["uid"],
             "controller": True, "blockOwnerDeletion": True}
    endpoints = [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False}}]
    slice_ = {"metadata": {"name": "kube-dns-kybern", "namespace": ns, "ownerReferences": [owner],
                           "labels": {**labels, "kubernetes.io/service-name": name,
                                      "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
              "addressType": "IPv6" if ":" in ip else "IPv4", "endpoints": endpoints, "ports": ports}
    await _put(client, ENDPOINTSLICES, ns, "kube-dns-kybern", slice_,
               lambda cur: cur.get("endpoints") == endpoints and cur.get("ports") == ports and
               owner in (cur["metadata"].get("ownerReferences") or []))


async def _put(client: Client, res: Any, ns: str, name: str, body: dict[str, Any], same: Any) -> None:
    try:
        cur = await client.get(res, name, ns)
    except errors.StatusError as e:
        if e.code != 404:
            raise
        await client.create(res, body, ns)
        return
    if not same(cur):
        body["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        await client.update(res, body)
