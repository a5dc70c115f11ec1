"""The CNI `bridge` plugin with `host-local` IPAM, built in.

cni.invoke() calls this instead of the plugin executable when a network config
asks for nothing it does not do (`supports`). It does what Debian's bridge +
host-local plugins do for kybern's pod network and answers with the same
result, so the rest of the CNI flow (the cached result, portmap's prevResult,
DEL) is unchanged:

ADD  the bridge is created (up, with the gateway address when `isGateway`) the
     first time; an address is reserved on disk in host-local's layout
     (`<dataDir>/<network>/<ip>` holding `<container id>\\r\\n<ifname>`, and
     `last_reserved_ip.0`), so either implementation can release what the other
     reserved; then one netlink request makes the veth pair — `vethXXXXXXXX`
     up on the bridge (hairpin mode when asked) and IFNAME inside the pod's
     netns — and, in one more send on a netlink socket of that netns (the one
     netns_add made there, else one made on the netns thread inside it), IFNAME
     is brought up and given the address (with its broadcast) and the routes
     through the gateway.
DEL  the host end of the veth is deleted (it takes the pod's end with it; without
     a cached result, IFNAME is deleted from inside the netns) and the address
     released, matching the container id as host-local does.

Why: each plugin run is a process started from the agent plus ~23 ms of CPU in
the two Go plugins; this is well under a millisecond. `KYBERN_CNI_BUILTIN=0`
runs the executables instead.

Not done (a config asking for any of these goes to the executable): ipMasq,
VLANs, IPv6 or several ranges, rangeStart/rangeEnd, static IPs, promiscMode,
macspoofchk, CHECK/STATUS. host-local's file lock is not taken: each agent has
its own dataDir.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Any

from kybern.network import rtnl
from kybern.network.netns import entered, no_ipv6_links, take_netlink
from kybern.network.netns import run as on_netns_thread

ENABLED = os.environ.get("KYBERN_CNI_BUILTIN", "1") != "0"
_KEYS = {"type", "name", "cniVersion", "bridge", "isGateway", "ipMasq", "hairpinMode", "ipam", "mtu",
         "prevResult", "runtimeConfig", "isDefaultGateway", "forceAddress"}
_IPAM_KEYS = {"type", "ranges", "routes", "dataDir"}
_DATA_DIR = "/var/lib/cni/networks"  # host-local's default
_bridges: dict[str, tuple[int, str]] = {}  # name -> (ifindex, mac): made or checked by this process
_bridge_lock = threading.Lock()
_last_reserved: dict[Path, int] = {}  # pool dir -> the last address this process reserved there


class PluginError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        self.code, self.msg = code, msg
        super().__init__(msg)


def supports(conf: dict[str, Any]) -> bool:
    """True when `conf` asks only for what this implementation does."""
    ipam = conf.get("ipam") or {}
    ranges = ipam.get("ranges") or []
    if conf.get("type") != "bridge" or set(conf) - _KEYS or conf.get("ipMasq") or conf.get("isDefaultGateway"):
        return False
    if ipam.get("type") != "host-local" or set(ipam) - _IPAM_KEYS or len(ranges) != 1 or len(ranges[0]) != 1:
        return False
    r = ranges[0][0]
    # IPv4 only (this runs per pod: no parsing here; a malformed subnet fails the ADD itself)
    return not set(r) - {"subnet", "gateway"} and "." in str(r.get("subnet", "")) and ":" not in str(r["subnet"])


async def run(command: str, conf: dict[str, Any], *, container_id: str, netns: str,
              ifname: str) -> dict[str, Any]:
    """One plugin call, as the executable would answer it (raises PluginError)."""
    if command == "ADD":
        return await _add(conf, container_id, netns, ifname)
    if command == "DEL":
        await _delete(conf, container_id, netns, ifname)
        return {}
    raise PluginError(4, f"unsupported command {command!r}")  # 4: incompatible CNI command


# -- IPAM (host-local's disk layout) --------------------------------------------
class Pool:
    def __init__(self, conf: dict[str, Any]) -> None:
        ipam = conf["ipam"]
        r = ipam["ranges"][0][0]
        self.subnet = ipaddress.ip_network(r["subnet"])
        self.gateway = ipaddress.ip_address(r.get("gateway") or self.subnet.network_address + 1)
        self.dir = Path(ipam.get("dataDir") or _DATA_DIR) / conf["name"]
        self.routes = ipam.get("routes") or []

    def reserve(self, container_id: str, ifname: str) -> ipaddress.IPv4Address:
        """The next free address after the last one reserved (host-local's order)."""
        first, last = int(self.subnet.network_address) + 1, int(self.subnet.broadcast_address) - 1
        prev = _last_reserved.get(self.dir)
        if prev is None:  # the file is written for host-local, read once per process
            try:
                prev = int(ipaddress.ip_address((self.dir / "last_reserved_ip.0").read_text().strip()))
            except (OSError, ValueError):
                prev = last
        size = last - first + 1
        for step in range(1, size + 1):
            ip = ipaddress.ip_address(first + (prev - first + step) % size)
            if ip == self.gateway:
                continue
            try:
                fd = os.open(self.dir / str(ip), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            except FileNotFoundError:  # the first reservation: make the directory (once, not per call)
                self.dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.dir / str(ip), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(f"{container_id}\r\n{ifname}")
            _overwrite(self.dir / "last_reserved_ip.0", str(ip).encode())
            _last_reserved[self.dir] = int(ip)
            return ip  # type: ignore[return-value]
        raise PluginError(999, f"no IP addresses available in range set: {self.subnet}")

    def release(self, container_id: str, ifname: str, ip: str | None = None) -> None:
        """Free what `container_id` holds (the file named `ip` when known, else a scan)."""
        owner = f"{container_id}\r\n{ifname}"
        candidates = [self.dir / ip] if ip else (self.dir.iterdir() if self.dir.is_dir() else [])
        for f in candidates:
            try:
                if f.read_bytes().decode().strip() in (owner, container_id):
                    f.unlink()
            except (OSError, UnicodeDecodeError):
                continue


def _overwrite(path: Path, data: bytes) -> None:
    """Write `data` over the file's contents without truncating it to zero
    first: ext4 flushes a file truncated to zero (auto_da_alloc), ~0.3 ms here."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


# -- links -----------------------------------------------------------------------
def _random_mac() -> str:
    b = bytearray(secrets.token_bytes(6))
    b[0] = (b[0] & 0xFE) | 0x02  # unicast, locally administered
    return ":".join(f"{x:02x}" for x in b)


def _bridge(conf: dict[str, Any], pool: Pool, nl: rtnl.Netlink) -> tuple[int, str]:
    """The bridge's (ifindex, mac), made up with its gateway address when missing."""
    name = conf.get("bridge") or "cni0"
    with _bridge_lock:
        if name in _bridges:
            return _bridges[name]
        nl.add_bridge(name, _random_mac())  # its own MAC: the gateway's must not follow its ports
        index = socket.if_nametoindex(name)
        if conf.get("isGateway"):
            nl.add_address(index, f"{pool.gateway}/{pool.subnet.prefixlen}", replace=True)
            with contextlib.suppress(OSError):
                Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
        mac = Path(f"/sys/class/net/{name}/address").read_text().strip()
        _bridges[name] = (index, mac)
        return index, mac


def _plumb(conf: dict[str, Any], pool: Pool, netns: str, ifname: str, ip: ipaddress.IPv4Address) -> dict[str, Any]:
    """The veth pair, the pod's address and routes (a job on the netns thread)."""
    mtu = conf.get("mtu")
    cidr = f"{ip}/{pool.subnet.prefixlen}"
    with rtnl.Netlink() as nl:
        br_index, br_mac = _bridge(conf, pool, nl)
        host_mac, pod_mac = _random_mac(), _random_mac()
        with open(netns, "rb") as ns:
            for attempt in range(4):
                host = "veth" + secrets.token_hex(4)
                try:
                    nl.add_veth(host, host_mac, br_index, ifname, pod_mac, ns.fileno(), mtu)
                    if os.environ.get("KYBERN_POD_IPV6_LINKS", "0") != "1":
                        no_ipv6_links(host)  # before the pod's end is up: no carrier, no addrconf yet
                    break
                except OSError as e:
                    if e.errno == errno.ENODEV and attempt == 0:  # the bridge went away: make it again
                        _bridges.pop(conf.get("bridge") or "cni0", None)
                        br_index, br_mac = _bridge(conf, pool, nl)
                        continue
                    if e.errno != errno.EEXIST or attempt == 3:
                        raise
        try:
            if conf.get("hairpinMode"):
                nl.set_hairpin(socket.if_nametoindex(host))
            pod_nl = take_netlink(netns)  # made inside it by netns_add: nothing to enter
            with contextlib.ExitStack() as stack:
                if pod_nl is None:
                    stack.enter_context(entered(netns))
                    pod_nl = rtnl.Netlink()
                stack.enter_context(pod_nl)
                index = pod_nl.index(ifname)
                pod_nl.requests(rtnl.up_msg(index), rtnl.address_msg(index, cidr),
                                *(rtnl.route_msg(r["dst"], r.get("gw") or str(pool.gateway), index)
                                  for r in pool.routes))
        except BaseException:
            nl.delete_link(host)
            raise
    return {
        "cniVersion": conf.get("cniVersion", "1.0.0"),
        "interfaces": [{"name": conf.get("bridge") or "cni0", "mac": br_mac},
                       {"name": host, "mac": host_mac},
                       {"name": ifname, "mac": pod_mac, "sandbox": netns}],
        "ips": [{"interface": 2, "address": cidr, "gateway": str(pool.gateway)}],
        "routes": [{"dst": r["dst"], **({"gw": r["gw"]} if r.get("gw") else {})} for r in pool.routes],
        "dns": {},
    }


def _add_job(conf: dict[str, Any], container_id: str, netns: str, ifname: str) -> dict[str, Any]:
    """The whole ADD, a job on the netns thread (the loop does no file or netlink I/O);
    a failure releases the address it reserved."""
    pool = Pool(conf)
    ip = pool.reserve(container_id, ifname)
    try:
        return _plumb(conf, pool, netns, ifname, ip)
    except OSError as e:
        pool.release(container_id, ifname, str(ip))
        raise PluginError(999, f"failed to set up {ifname} in {netns}: {e.strerror or e}") from e
    except BaseException:
        pool.release(container_id, ifname, str(ip))
        raise


async def _add(conf: dict[str, Any], container_id: str, netns: str, ifname: str) -> dict[str, Any]:
    return await on_netns_thread(lambda: _add_job(conf, container_id, netns, ifname))


def _delete_host_ends(prev: dict[str, Any]) -> bool:
    """Delete the veth host ends a cached result names (each takes the pod's end
    with it); False when it names none. Not on the netns thread: a link's
    deletion waits ~40 ms in the kernel, which would hold up pod starts."""
    hosts = [i["name"] for i in prev.get("interfaces") or [] if i.get("name", "").startswith("veth")
             and not i.get("sandbox")]
    with rtnl.Netlink() as nl:
        for h in hosts:
            nl.delete_link(h)
    return bool(hosts)


def _delete_inside(netns: str, ifname: str) -> None:
    with entered(netns), rtnl.Netlink() as nl:
        nl.delete_link(ifname)


async def _delete(conf: dict[str, Any], container_id: str, netns: str, ifname: str) -> None:
    prev = conf.get("prevResult") or {}
    try:
        if not await asyncio.to_thread(_delete_host_ends, prev) and os.path.exists(netns):
            with contextlib.suppress(OSError):  # the netns may be gone already: nothing left to delete
                await on_netns_thread(lambda: _delete_inside(netns, ifname))
    except OSError as e:
        raise PluginError(999, f"failed to delete the veth of {ifname}: {e.strerror or e}") from e
    finally:
        ips = [i["address"].split("/")[0] for i in prev.get("ips") or []]
        Pool(conf).release(container_id, ifname, ips[0] if ips else None)
