"""Per-pod network namespaces on one node: the node's bridge and pod subnet,
and each pod's netns set up and torn down through CNI (cni.py).

Mode (the agent's `--pod-network`):
- `cni`: every pod that is not `hostNetwork` gets a netns `kybern-<uid8>`
  (`ip netns add`, so it lives at /var/run/netns/kybern-<uid8>) and an `eth0`
  on the node's bridge `kybern<N>` with an address from the node's podCIDR
  `10.244.<N>.0/24`, through a bridge + host-local + portmap conflist. Needs
  root; the bridge plugin is built in (bridge.py), portmap is Debian's.
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

What a pod costs: the netns is made as `ip netns add` makes it (netns.py),
with `lo` up, and the bridge plugin runs built in (bridge.py: one netlink
request for the veth pair, two more in the pod's netns; ~2 ms of CPU where
Debian's bridge + host-local executables took ~23 ms plus the spawn). Both run
in the pod-network worker (netd.py), a child process of the agent, so that
kernel work and its GIL hand-overs stay off the agent's event loop
(`KYBERN_NETWORK_WORKER=0`: on the agent's netns thread instead). Teardown
stays in the agent: it is not on a pod start's path.
portmap is only called for pods with hostPorts: with no port mappings its ADD
returns the previous result unchanged and its DEL has nothing to remove, so
its process (and its iptables calls) is saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import socket
import struct
import sys
from pathlib import Path
from typing import Any

from kybern.network import bridge, cni, netd, netns, rtnl
from kybern.network.netns import NETNS_DIR, netns_add, netns_delete, shared_netns_dir
from kybern.node.runtimes.records import write_record

log = logging.getLogger(__name__)

CLUSTER_CIDR = os.environ.get("KYBERN_CLUSTER_CIDR", "10.244.0.0/16")
LOCK_DIR = Path(os.environ.get("KYBERN_PODCIDR_LOCKS", "/run/kybern/podcidr"))


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
    # the bridge (with host-local) is built in unless switched off; lo is brought up in-process
    needed = ("portmap",) if bridge.ENABLED else ("bridge", "host-local", "portmap")
    missing = cni.plugins_available(needed)
    if missing:
        return f"CNI plugins {', '.join(missing)} not found in {cni.CNI_PATH} (apt install containernetworking-plugins)"
    return ""


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
        self._worker: NetworkWorker | None = None
        self._use_worker = os.environ.get("KYBERN_NETWORK_WORKER", "1") != "0"

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
    async def setup(self, node_pod_cidr: str | None = None, taken: set[str] | frozenset[str] = frozenset()) -> None:
        """Decide the mode and, for cni, claim the subnet (not one of `taken`, the
        other Nodes' podCIDRs) and write the conflist."""
        if self.requested == "host":
            return
        reason = cni_unavailable_reason()
        if reason:
            if self.requested == "cni":
                raise RuntimeError(f"--pod-network cni: {reason}")
            self.fallback_reason = reason
            log.warning("pod network: using the host's network for every pod (%s)", reason)
            return
        self._claim(node_pod_cidr, taken)
        self.mode = "cni"
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "pods").mkdir(exist_ok=True)
        self.conflist = cni.bridge_conflist(f"kybern-{self.node_name}", self.bridge, str(self.subnet),
                                            self.gateway, str(self.root / "ipam"))
        (self.root / "conflist.json").write_text(json.dumps(self.conflist, indent=1))
        with contextlib.suppress(OSError):  # the bridge plugin's isGateway does it too
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
        shared_netns_dir()
        await self._sweep_orphans()
        if self._use_worker:
            await self._live_worker()
        log.info("pod network: CNI bridge %s, podCIDR %s", self.bridge, self.subnet)

    async def _sweep_orphans(self) -> None:
        """Delete the network namespaces a killed agent that held this pod CIDR left
        behind (`kill -9` of its `kybern up`, its data dir then thrown away): theirs
        have an address of this subnet, which no live agent can hold besides this one
        (the CIDR's lock). Those this agent's own records name are left to the
        restore, which re-attaches them. Their veth pairs go with them."""
        own = {_read_json(f).get("netns") for f in (self.root / "pods").glob("*.json")}
        try:
            names = [n for n in os.listdir(NETNS_DIR) if n.startswith("kybern-") and n not in own]
        except OSError:
            return
        assert self.subnet is not None
        for name in names:
            path = os.path.join(NETNS_DIR, name)
            try:
                addr = await netns.run(lambda path=path: _eth0_address(path))
            except OSError:
                continue
            if addr and ipaddress.ip_address(addr) in self.subnet:
                log.info("pod network: removing %s, left by a killed agent of podCIDR %s", name, self.subnet)
                netns_delete(name)

    def _claim(self, node_pod_cidr: str | None, taken: set[str] | frozenset[str] = frozenset()) -> None:
        """A /24 no other agent of this machine holds (the lock) and no other Node of
        the cluster has (`taken`: agents on other machines); our Node's own first."""
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        state = self.root / "state.json"
        others = {i for i in (index_of(c) for c in taken) if i is not None}
        preferred: list[int] = []
        for cidr in (node_pod_cidr, _read_json(state).get("podCIDR")):
            i = index_of(cidr) if cidr else None
            if i is not None and i not in preferred and (cidr == node_pod_cidr or i not in others):
                preferred.append(i)
        total = ipaddress.ip_network(CLUSTER_CIDR).num_addresses >> 8
        for i in preferred + [i for i in range(total) if i not in preferred and i not in others]:
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
        if self._worker is not None:
            await self._worker.stop()
            self._worker = None
        for f in list((self.root / "pods").glob("*.json")):
            await self.remove(f.stem)
        with rtnl.Netlink() as nl:
            nl.delete_link(self.bridge)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- pods -----------------------------------------------------------------
    async def _live_worker(self) -> NetworkWorker:
        """The pod-network worker, started again if it died (killed by hand, OOM)."""
        if self._worker is None or not self._worker.alive:
            if self._worker is not None:
                log.warning("pod network: the pod-network worker (pid %s) exited; starting another",
                            self._worker.proc.pid)
                await self._worker.stop()
            self._worker = await NetworkWorker.start()
        return self._worker

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
        write_record(self.root / "pods" / f"{sandbox_id}.json", record)  # before ADD: DEL must find it
        try:
            if self._use_worker:
                result = await (await self._live_worker()).add(ns, self._conflist_for(rc), sandbox_id, args, rc)
            else:
                await netns_add(ns)  # with lo up
                result = await cni.add(self._conflist_for(rc), container_id=sandbox_id, netns=path, args=args,
                                       runtime_config=rc)
        except Exception:
            await self.remove(sandbox_id)
            raise
        # beside the record, not over it (replacing a file makes ext4 flush it: auto_da_alloc),
        # and in place: without it DEL still finds the veth and the address (bridge.py)
        write_record(self.root / "pods" / f"{sandbox_id}.result", result, atomic=False)
        ips = cni.pod_ip(result)
        if not ips:
            await self.remove(sandbox_id)
            raise RuntimeError(f"CNI ADD for {namespace}/{name} returned no address: {result}")
        return ips[0], path

    async def remove(self, sandbox_id: str) -> None:
        """CNI DEL and delete the netns (idempotent)."""
        f, res = self.root / "pods" / f"{sandbox_id}.json", self.root / "pods" / f"{sandbox_id}.result"
        rec = _read_json(f)
        if not rec:
            return
        await self._teardown(rec["netns"], sandbox_id, rec.get("namespace", ""), rec.get("name", ""),
                             _read_json(res) or rec.get("result"), rec.get("runtimeConfig"))
        res.unlink(missing_ok=True)
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


class NetworkWorker:
    """The agent's side of the pod-network worker process (netd.py): requests
    written as JSON lines, answered in any order, matched by id."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read(), name="netd-replies")

    @classmethod
    async def start(cls) -> NetworkWorker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", netd.__file__, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=1 << 24)
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            reply = json.loads(line)
            fut = self._waiting.pop(reply["id"], None)
            if fut is not None and not fut.done():
                fut.set_result(reply)
        for fut in self._waiting.values():  # the worker died
            if not fut.done():
                fut.set_exception(RuntimeError("the pod-network worker exited"))
        self._waiting.clear()

    @property
    def alive(self) -> bool:
        return not self._reader.done()

    async def add(self, netns_name: str, conflist: dict[str, Any], container_id: str, args: str,
                  runtime_config: dict[str, Any] | None) -> dict[str, Any]:
        """netns_add + cni.add in the worker: the CNI result, or CNIError as cni.add raises."""
        self._next += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = fut
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": self._next, "netns": netns_name, "conflist": conflist,
                                          "container_id": container_id, "args": args,
                                          "runtime_config": runtime_config}).encode() + b"\n")
        reply = await fut
        if "error" in reply:
            if reply.get("cni"):
                raise cni.CNIError(*reply["cni"])
            raise RuntimeError(reply["error"])
        return reply["result"]

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self._reader.cancel()
        await self.proc.wait()


def _eth0_address(path: str) -> str:
    """The IPv4 address of eth0 in the netns at `path` ('' without one); on the netns thread."""
    with netns.entered(path), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            out = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", b"eth0"))  # SIOCGIFADDR
        except OSError:
            return ""
    return socket.inet_ntoa(out[20:24])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
