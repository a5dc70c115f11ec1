"""Network namespaces, made and entered without a process.

`netns_add` is `ip netns add` (unshare, bind-mounted at /var/run/netns/<name>,
`lo` brought up as the loopback plugin would); it keeps the netlink socket it
made inside the new namespace for the pod's CNI ADD (`take_netlink`), which
then needs neither to enter the namespace nor to open another socket there;
`netns_delete` is
`ip netns del`; `uts_namespace` makes a pod's UTS namespace with its hostname; `in_netns` runs a function inside a namespace, which is how a
socket is made in a pod's namespace (it keeps that namespace wherever it is
used afterwards).

A thread's network namespace is its own, so this work runs on one long-lived
thread, the *netns thread*, that enters a namespace, does the job and goes
back to the process's namespace before the next one (`entered`); the agent's
other threads never leave theirs. One thread, not one per job: starting a
thread made the event loop wait for it (~13 % of the agent's loop in a burst of
pod starts), and the kernel serialises this work under its rtnl lock anyway.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from kybern.network import rtnl

T = TypeVar("T")
NETNS_DIR = "/var/run/netns"
_CLONE_NEWNET, _CLONE_NEWUTS = 0x40000000, 0x04000000
_MS_BIND, _MS_REC, _MS_SHARED, _MNT_DETACH = 0x1000, 0x4000, 0x100000, 2
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def setns(fd: int, nstype: int = _CLONE_NEWNET) -> None:
    """Move the calling thread (or a child between fork and exec) into the
    namespace open as `fd` (of type `nstype`: CLONE_NEWNET by default)."""
    if _libc is None or _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno() if _libc is not None else 38
        raise OSError(err, os.strerror(err))


class _NetnsThread:
    """The one thread that enters network namespaces; back home after every job."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.home: int | None = None  # an fd of the process's own netns

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        with self._lock:
            if self._pool is None:
                self.home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="netns")
            return self._pool.submit(self._job, fn)

    def _job(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        finally:  # a job that left home is undone here, even when it failed
            assert self.home is not None
            setns(self.home)


_thread = _NetnsThread()
_netlinks: dict[str, rtnl.Netlink] = {}  # netns path -> a socket made inside it by netns_add


def take_netlink(path: str) -> rtnl.Netlink | None:
    """The netlink socket netns_add made inside the netns at `path`, handed over
    once (the caller closes it); None if there is none."""
    return _netlinks.pop(path, None)


@contextlib.contextmanager
def entered(path: str) -> Iterator[None]:
    """Within a job on the netns thread: inside the netns at `path`, then home."""
    with open(path, "rb") as f:
        setns(f.fileno())
    try:
        yield
    finally:
        assert _thread.home is not None
        setns(_thread.home)


async def run(fn: Callable[[], T]) -> T:
    """fn() as a job on the netns thread, awaited without blocking the loop."""
    return await asyncio.wrap_future(_thread.submit(fn))


def in_netns(path: str, fn: Callable[[], T]) -> T:
    """fn() run inside the netns at `path`, on the netns thread; blocks the
    caller (which must not be that thread) until it is done."""
    def job() -> T:
        with entered(path):
            return fn()
    return _thread.submit(job).result()


def socket_in_netns(path: str, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket that belongs to the netns at `path` (it keeps its namespace
    wherever it is used). Port-forward dials a pod's localhost this way, as the
    kubelet does."""
    return in_netns(path, lambda: socket.socket(family, socket.SOCK_STREAM))


def libc_call(name: str, *args: Any) -> None:
    """A libc call that returns 0 on success; OSError with errno otherwise."""
    if _libc is None or getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno() if _libc is not None else 38
        raise OSError(err, f"{name}: {os.strerror(err)}")


def shared_netns_dir() -> None:
    """/var/run/netns as a shared mount point, as iproute2 makes it, so a netns
    unmounted here is unmounted in every mount namespace that saw it."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    try:
        libc_call("mount", b"", NETNS_DIR.encode(), b"none", _MS_SHARED | _MS_REC, None)
    except OSError as e:
        if e.errno != 22:  # EINVAL: not a mount point yet
            raise
        libc_call("mount", NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", _MS_BIND | _MS_REC, None)
        libc_call("mount", b"", NETNS_DIR.encode(), b"none", _MS_SHARED | _MS_REC, None)


def no_ipv6_links(ifname: str = "default") -> None:
    """No IPv6 on `ifname` (or, for "default", on the links made in this netns from
    now on; `lo` keeps ::1) of the calling thread's netns. The pod network is IPv4:
    a link's IPv6 link-local address costs its duplicate address detection and the
    multicast listener reports, kernel workers' time at each pod start (as Calico
    and Docker do for IPv4-only networks)."""
    with contextlib.suppress(FileNotFoundError):  # a kernel without IPv6
        fd = os.open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"1")
        finally:
            os.close(fd)


async def netns_add(name: str) -> str:
    """`ip netns add NAME` with `lo` up, without a process: the netns thread
    unshares into a new netns, bind-mounts it at /var/run/netns/NAME and goes
    home (the namespace lives on through the mount). Returns the path."""
    path = os.path.join(NETNS_DIR, name)
    created = False

    def job() -> None:
        nonlocal created
        # the mount point too is made here, not on the caller's loop: it waits for the
        # directory's lock, which the mounts of other namespaces hold
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        created = True
        libc_call("unshare", _CLONE_NEWNET)
        nl = rtnl.Netlink()  # it belongs to the new netns
        try:
            libc_call("mount", b"/proc/thread-self/ns/net", path.encode(), b"none", _MS_BIND, None)
            nl.set_up(rtnl.LOOPBACK_INDEX)
            if os.environ.get("KYBERN_POD_IPV6_LINKS", "0") != "1":
                no_ipv6_links()
        except BaseException:
            nl.close()
            raise
        old = _netlinks.pop(path, None)
        if old is not None:
            old.close()
        _netlinks[path] = nl

    fut = _thread.submit(job)
    try:
        await asyncio.shield(asyncio.wrap_future(fut))
    except BaseException:  # failed, or the caller was cancelled: undo it once the job is over
        fut.add_done_callback(lambda _: netns_delete(name) if created else None)
        raise
    return path


def uts_namespace(hostname: str) -> int:
    """A new UTS namespace with `hostname` (a pod's, as a container runtime gives it),
    as an fd (close-on-exec) that keeps it alive and that setns() or
    /proc/<pid>/fd/<fd> enters. Made on the calling thread, which goes back to its
    own namespace at once: ~25 µs here, where a bind mount to a file (as for network
    namespaces) cost 0.3 ms and a hop to the netns thread 0.4 ms more."""
    home = os.open("/proc/thread-self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc_call("unshare", _CLONE_NEWUTS)
        try:
            socket.sethostname(hostname)
            return os.open("/proc/thread-self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            setns(home, _CLONE_NEWUTS)
    finally:
        os.close(home)


def netns_delete(name: str) -> None:
    """`ip netns del NAME` (idempotent): unmount and remove the file; the
    namespace goes when nothing else holds it."""
    path = os.path.join(NETNS_DIR, name)
    nl = _netlinks.pop(path, None)
    if nl is not None:  # it would keep the namespace alive
        nl.close()
    with contextlib.suppress(OSError):
        libc_call("umount2", path.encode(), _MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
