"""Routes to the pods of nodes on other machines, as flannel's host-gw backend:
each other node's podCIDR via that node's InternalIP, on a CNI node agent.

Nodes whose InternalIP is an address of this machine need none (several agents
on one machine: their bridges all live in the host's namespace, which routes
between them already), so with the default `--address 127.0.0.1` nothing is
added. The machines must reach each other's InternalIPs directly (one L2
segment, as host-gw); there is no overlay. The routes carry their own protocol
number (`ip route show proto 77`), so only kybern's are replaced or removed (a
destination this machine routes otherwise, e.g. another cluster's bridge, is
left alone with a warning);
they are left in place when the agent stops (the pods of the other nodes stay
reachable from this machine's other agents and host).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import shutil
import socket
from typing import Any

from kybern.client.dirtyloop import sync_when_dirty
from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.resources import NODES

log = logging.getLogger(__name__)

PROTO = "77"  # the routes' rtm_protocol: kybern's own, as bird's or zebra's


def is_local(ip: str) -> bool:
    """Is `ip` an address of this machine (of its current network namespace)?"""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((ip, 0))
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                return False
            raise
    return True


def wanted(nodes: list[dict[str, Any]], own_name: str, own_cidr: str | None) -> dict[str, str]:
    """podCIDR -> InternalIP of every other node this machine must route to."""
    own = ipaddress.ip_network(own_cidr) if own_cidr else None
    out: dict[str, str] = {}
    for n in nodes:
        if n["metadata"]["name"] == own_name:
            continue
        cidr = (n.get("spec") or {}).get("podCIDR")
        ip = next((a.get("address") for a in (n.get("status") or {}).get("addresses") or []
                   if a.get("type") == "InternalIP"), None)
        if not cidr or not ip:
            continue
        try:
            net = ipaddress.ip_network(cidr)
            if own is not None and net.overlaps(own) or is_local(ip):
                continue
        except (ValueError, OSError):
            continue
        out[str(net)] = ip
    return out


def _route_of(node: dict[str, Any]) -> tuple[Any, ...]:
    return ((node.get("spec") or {}).get("podCIDR"),
            [a for a in (node.get("status") or {}).get("addresses") or [] if a.get("type") == "InternalIP"])


async def _ip(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec("ip", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode:
        raise OSError(f"ip {' '.join(args)}: {err.decode().strip()}")
    return out.decode()


async def current() -> tuple[dict[str, str], set[str]]:
    """The main table now: kybern's routes (destination -> gateway), and the
    destinations of every other route, which are never replaced (a bridge of
    another cluster on this machine, say)."""
    ours: dict[str, str] = {}
    others: set[str] = set()
    for r in json.loads(await _ip("-j", "-4", "route", "show") or "[]"):
        dst = r.get("dst", "")
        if str(r.get("protocol", "")) == PROTO:
            ours[dst] = r.get("gateway", "")
        else:
            others.add(dst if "/" in dst or dst == "default" else f"{dst}/32")
    return ours, others


class NodeRoutes:
    """Keeps this machine's routes to the other nodes' pods level with the Nodes."""

    def __init__(self, client: Client, node_name: str, pod_cidr: str | None) -> None:
        self.client, self.node_name, self.pod_cidr = client, node_name, pod_cidr
        self.nodes = Informer(client, NODES)
        self._dirty = asyncio.Event()
        self._conflicts: set[str] = set()  # warned about once

    async def run(self) -> None:
        if shutil.which("ip") is None:
            log.warning("node routes: no `ip` command (iproute2): pods of nodes on other machines are unreachable")
            return
        self.nodes.add_handler(self._changed)
        self.nodes.start()
        try:
            await self.nodes.wait_synced()
            self._dirty.set()
            await sync_when_dirty(self._dirty, self.sync, "node routes")
        finally:
            await self.nodes.stop()

    def _changed(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ != "MODIFIED" or old is None or _route_of(old) != _route_of(new):  # not every heartbeat
            self._dirty.set()

    async def sync(self) -> None:
        want = wanted(self.nodes.list(), self.node_name, self.pod_cidr)
        have, others = await current()
        for dst, via in want.items():
            if dst in others:
                if dst not in self._conflicts:
                    log.warning("node routes: %s is routed on this machine already; not via %s", dst, via)
                    self._conflicts.add(dst)
                continue
            if have.get(dst) != via:
                await _ip("route", "replace", dst, "via", via, "proto", PROTO)
                log.info("node routes: %s via %s", dst, via)
        for dst in set(have) - set(want):
            await _ip("route", "del", dst, "proto", PROTO)
            log.info("node routes: %s removed", dst)
