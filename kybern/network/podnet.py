"""Per-pod network namespaces on one node: the node's bridge and pod subnet,
and each pod's netns set up and torn down through CNI (cni.py).

Mode (the agent's `--pod-network`):
- `cni`: every pod that is not `hostNetwork` gets a netns `kybern-<uid8>`
  (`ip netns add`, so it lives at /var/run/netns/kybern-<uid8>) and an `eth0`
  on the node's bridge `kybern<N>` with an address from the node's podCIDR
  `10.244.<N>.0/24`, through Debian's bridge + host-local + portmap plugins
  (and loopback for `lo`). Needs root and the plugins.
- `host`: pods share the host's network (the process runtime's behaviour
  without root); podIP is the node's address.
- `auto` (default): `cni` when it can work here, else `host`, said once in the
  log and as a Node event.

The podCIDR: a tiny machine-wide allocator. Each agent takes `10.244.<N>.0/24`
by holding an exclusive lock on /run/kybern/podcidr/<N>.lock for its lifetime
(several agents and several clusters can share one machine); it prefers the
CIDR its Node already has, then the one it used last. The agent writes it to
`node.spec.podCIDR`/`podCIDRs` when it registers. All bridges live in the
host's namespace, so pods of different agents on one machine reach each other
through the host's routing table (each bridge's connected route), and the host
reaches every pod by IP. Nothing routes between machines.

What a pod costs: the netns is made in-process as `ip netns add` makes it
(unshare in a short-lived thread, bind-mounted at /var/run/netns/<name>), and
its `lo` is brought up there with one ioctl, as the loopback plugin would; the
one plugin process per pod is the bridge (which runs host-local). portmap is
only called for pods with hostPorts: with no port mappings its ADD returns the
previous result unchanged and its DEL has nothing to remove, so the plugin
processes (and their iptables calls) are saved. Spawning plugins from a large
process was most of the cost of a pod start in a burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import ipaddress
import json
import logging
import os
import shutil
import socket
import struct
import sys
import threading
from pathlib import Path
from typing import Any

from kybern.network import cni

log = logging.getLogger(__name__)

CLUSTER_CIDR = os.environ.get("KYBERN_CLUSTER_CIDR", "10.244.0.0/16")
LOCK_DIR = Path(os.environ.get("KYBERN_PODCIDR_LOCKS", "/run/kybern/podcidr"))
NETNS_DIR = "/var/run/netns"
_CLONE_NEWNET = 0x40000000
_MS_BIND, _MS_REC, _MS_SHARED, _MNT_DETACH = 0x1000, 0x4000, 0x100000, 2
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def netns_name(uid: str) -> str:
    return f"kybern-{uid.replace('-', '')[:8]}"


def subnet_for(index: int, cluster_cidr: str = CLUSTER_CIDR) -> ipaddress.IPv4Network:
    """The index-th /24 of the cluster CIDR."""
    net = ipaddress.ip_network(cluster_cidr)
    subs = net.subnets(new_prefix=24)
    for i, s in enumerate(subs):
        if i == index:
            return s  # type: ignore[return-value]
    raise ValueError(f"no /24 number {index} in {cluster_cidr}")


def index_of(cidr: str, cluster_cidr: str = CLUSTER_CIDR) -> int | None:
    try:
        sub, net = ipaddress.ip_network(cidr), ipaddress.ip_network(cluster_cidr)
    except ValueError:
        return None
    if sub.prefixlen != 24 or not sub.subnet_of(net):  # type: ignore[arg-type]
        return None
    return (int(sub.network_address) - int(net.network_address)) >> 8


def cni_unavailable_reason() -> str:
    """Why `cni` mode cannot work on this machine ('' when it can)."""
    if os.geteuid() != 0:
        return "the node agent is not running as root"
    missing = cni.plugins_available()
    if missing:
        return f"CNI plugins {', '.join(missing)} not found in {cni.CNI_PATH} (apt install containernetworking-plugins)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    return ""


def setns(fd: int) -> None:
    """Move the calling thread (or a child between fork and exec) into the
    network namespace open as `fd`."""
    if _libc is None or _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno() if _libc is not None else 38
        raise OSError(err, os.strerror(err))


def socket_in_netns(path: str, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket that belongs to the netns at `path` (created by a short-lived
    thread that enters it; the socket keeps its namespace wherever it is used).
    Port-forward dials a pod's localhost this way, as the kubelet does."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            with open(path, "rb") as f:
                setns(f.fileno())
            box["sock"] = socket.socket(family, socket.SOCK_STREAM)
        except OSError as e:
            box["err"] = e

    t = threading.Thread(target=run, name="netns-socket")  # the thread dies with its namespace
    t.start()
    t.join()
    if "err" in box:
        raise box["err"]
    return box["sock"]


def _libc_call(name: str, *args: Any) -> None:
    if _libc is None or getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno() if _libc is not None else 38
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _shared_netns_dir() -> None:
    """/var/run/netns as a shared mount point, as iproute2 makes it, so a netns
    unmounted here is unmounted in every mount namespace that saw it."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    try:
        _libc_call("mount", b"", NETNS_DIR.encode(), b"none", _MS_SHARED | _MS_REC, None)
    except OSError as e:
        if e.errno != 22:  # EINVAL: not a mount point yet
            raise
        _libc_call("mount", NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", _MS_BIND | _MS_REC, None)
        _libc_call("mount", b"", NETNS_DIR.encode(), b"none", _MS_SHARED | _MS_REC, None)


def _loopback_up() -> None:
    """Bring `lo` of the calling thread's netns up (the loopback plugin's job)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | _IFF_UP))


async def netns_add(name: str) -> str:
    """`ip netns add NAME` with `lo` up, without a process: a fresh thread
    unshares into a new netns, bind-mounts it at /var/run/netns/NAME and ends
    (the namespace lives on through the mount; the agent's other threads keep
    theirs). The event loop waits without blocking. Returns the path."""
    path = os.path.join(NETNS_DIR, name)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finish(err: BaseException | None) -> None:
        if not done.done():
            done.set_exception(err) if err is not None else done.set_result(None)

    def run() -> None:
        err: BaseException | None = None
        try:
            _libc_call("unshare", _CLONE_NEWNET)
            _libc_call("mount", b"/proc/thread-self/ns/net", path.encode(), b"none", _MS_BIND, None)
            _loopback_up()
        except BaseException as e:  # noqa: BLE001 -- handed to the caller
            err = e
        loop.call_soon_threadsafe(finish, err)

    threading.Thread(target=run, name="netns-add", daemon=True).start()
    try:
        await asyncio.shield(done)
    except BaseException:
        netns_delete(name)
        raise
    return path


def netns_delete(name: str) -> None:
    """`ip netns del NAME` (idempotent): unmount and remove the file; the
    namespace goes when nothing else holds it."""
    path = os.path.join(NETNS_DIR, name)
    with contextlib.suppress(OSError):
        _libc_call("umount2", path.encode(), _MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def _ip(*args: str, check: bool = True) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec("ip", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    if check and proc.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {out.decode(errors='replace').strip()}")
    return proc.returncode or 0, out.decode(errors="replace")


class PodNetwork:
    """The pod network of one node agent."""

    def __init__(self, data_dir: str | os.PathLike[str], node_name: str, requested: str = "auto") -> None:
        if requested not in ("auto", "cni", "host"):
            raise ValueError(f"--pod-network must be auto, cni or host, not {requested!r}")
        self.root = Path(data_dir) / "network"
        self.node_name = node_name
        self.requested = requested
        self.mode = "host"
        self.fallback_reason = ""  # why auto chose host
        self.index: int | None = None
        self.subnet: ipaddress.IPv4Network | None = None
        self._lock_fd: int | None = None
        self.conflist: dict[str, Any] = {}

    @property
    def pod_cidr(self) -> str | None:
        return str(self.subnet) if self.subnet else None

    @property
    def bridge(self) -> str:
        return f"kybern{self.index}"

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1) if self.subnet else ""

    # -- lifecycle ----------------------------------------------------------
    async def setup(self, node_pod_cidr: str | None = None) -> None:
        """Decide the mode and, for cni, claim the subnet and write the conflist."""
        if self.requested == "host":
            return
        reason = cni_unavailable_reason()
        if reason:
            if self.requested == "cni":
                raise RuntimeError(f"--pod-network cni: {reason}")
            self.fallback_reason = reason
            log.warning("pod network: using the host's network for every pod (%s)", reason)
            return
        self._claim(node_pod_cidr)
        self.mode = "cni"
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "pods").mkdir(exist_ok=True)
        self.conflist = cni.bridge_conflist(f"kybern-{self.node_name}", self.bridge, str(self.subnet),
                                            self.gateway, str(self.root / "ipam"))
        (self.root / "conflist.json").write_text(json.dumps(self.conflist, indent=1))
        with contextlib.suppress(OSError):  # the bridge plugin's isGateway does it too
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
        _shared_netns_dir()
        log.info("pod network: CNI bridge %s, podCIDR %s", self.bridge, self.subnet)

    def _claim(self, node_pod_cidr: str | None) -> None:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        state = self.root / "state.json"
        preferred: list[int] = []
        for cidr in (node_pod_cidr, _read_json(state).get("podCIDR")):
            i = index_of(cidr) if cidr else None
            if i is not None and i not in preferred:
                preferred.append(i)
        total = ipaddress.ip_network(CLUSTER_CIDR).num_addresses >> 8
        for i in preferred + [i for i in range(total) if i not in preferred]:
            fd = os.open(LOCK_DIR / f"{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {self.node_name} {self.root}\n".encode(), 0)
            self._lock_fd, self.index, self.subnet = fd, i, subnet_for(i)
            self.root.mkdir(parents=True, exist_ok=True)
            state.write_text(json.dumps({"podCIDR": str(self.subnet)}))
            return
        raise RuntimeError(f"no free /24 left in the cluster CIDR {CLUSTER_CIDR}")

    async def shutdown(self) -> None:
        """Tear down whatever pod networks are left, then the bridge; release the subnet."""
        if self.mode != "cni":
            return
        for f in list((self.root / "pods").glob("*.json")):
            await self.remove(f.stem)
        await _ip("link", "del", self.bridge, check=False)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- pods -----------------------------------------------------------------
    def wants_netns(self, host_network: bool) -> bool:
        return self.mode == "cni" and not host_network

    async def add(self, sandbox_id: str, *, uid: str, namespace: str, name: str,
                  port_mappings: list[dict[str, Any]] | None = None) -> tuple[str, str]:
        """Create the pod's netns and attach it; returns (pod IP, netns path)."""
        ns = netns_name(uid)
        path = os.path.join(NETNS_DIR, ns)
        if os.path.exists(path):  # a leftover of a crashed agent: start clean
            await self._teardown(ns, sandbox_id, namespace, name, None, None)
        args = cni.cni_args(namespace, name, sandbox_id)
        rc = {"portMappings": port_mappings} if port_mappings else None
        record = {"netns": ns, "uid": uid, "namespace": namespace, "name": name, "runtimeConfig": rc}
        _write_json(self.root / "pods" / f"{sandbox_id}.json", record)  # before ADD: DEL must find it
        try:
            await netns_add(ns)  # with lo up
            result = await cni.add(self._conflist_for(rc), container_id=sandbox_id, netns=path, args=args,
                                   runtime_config=rc)
        except Exception:
            await self.remove(sandbox_id)
            raise
        record["result"] = result
        _write_json(self.root / "pods" / f"{sandbox_id}.json", record)
        ips = cni.pod_ip(result)
        if not ips:
            await self.remove(sandbox_id)
            raise RuntimeError(f"CNI ADD for {namespace}/{name} returned no address: {result}")
        return ips[0], path

    async def remove(self, sandbox_id: str) -> None:
        """CNI DEL and delete the netns (idempotent)."""
        f = self.root / "pods" / f"{sandbox_id}.json"
        rec = _read_json(f)
        if not rec:
            return
        await self._teardown(rec["netns"], sandbox_id, rec.get("namespace", ""), rec.get("name", ""),
                             rec.get("result"), rec.get("runtimeConfig"))
        f.unlink(missing_ok=True)

    async def _teardown(self, ns: str, sandbox_id: str, namespace: str, name: str,
                        prev: dict[str, Any] | None, rc: dict[str, Any] | None) -> None:
        path = os.path.join(NETNS_DIR, ns)
        args = cni.cni_args(namespace, name, sandbox_id)
        if self.conflist:
            for e in await cni.delete(self._conflist_for(rc), container_id=sandbox_id, netns=path, args=args,
                                      prev=prev, runtime_config=rc):
                log.warning("CNI DEL of %s/%s: %s", namespace, name, e)
        netns_delete(ns)

    def _conflist_for(self, runtime_config: dict[str, Any] | None) -> dict[str, Any]:
        """The node's conflist, without the plugins that have nothing to do for
        this pod: those that only act on a capability (portmap: portMappings)
        the pod does not use."""
        have = {k for k, v in (runtime_config or {}).items() if v}
        plugins = [p for p in self.conflist["plugins"]
                   if not p.get("capabilities") or have & {k for k, v in p["capabilities"].items() if v}]
        return {**self.conflist, "plugins": plugins}

    def owned_sandboxes(self) -> list[str]:
        return [f.stem for f in (self.root / "pods").glob("*.json")] if self.mode == "cni" else []


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
