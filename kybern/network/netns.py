"""Network namespaces, made and entered without a process.

`netns_add` is `ip netns add` (unshare in a short-lived thread, bind-mounted at
/var/run/netns/<name>, `lo` brought up as the loopback plugin would);
`netns_delete` is `ip netns del`; `in_netns` runs a function in a fresh thread
inside a namespace (a thread's namespace is its own: the agent's other threads
keep theirs), which is how a socket is made in a pod's namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
NETNS_DIR = "/var/run/netns"
_CLONE_NEWNET = 0x40000000
_MS_BIND, _MS_REC, _MS_SHARED, _MNT_DETACH = 0x1000, 0x4000, 0x100000, 2
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def setns(fd: int) -> None:
    """Move the calling thread (or a child between fork and exec) into the
    network namespace open as `fd`."""
    if _libc is None or _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno() if _libc is not None else 38
        raise OSError(err, os.strerror(err))


def in_netns(path: str, fn: Callable[[], T]) -> T:
    """fn() run by a fresh thread that has entered the netns at `path` (the
    thread dies with its namespace); its result or exception is the caller's."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            with open(path, "rb") as f:
                setns(f.fileno())
            box["ok"] = fn()
        except BaseException as e:  # noqa: BLE001 -- handed to the caller
            box["err"] = e

    t = threading.Thread(target=run, name="in-netns")
    t.start()
    t.join()
    if "err" in box:
        raise box["err"]
    return box["ok"]


def socket_in_netns(path: str, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket that belongs to the netns at `path` (it keeps its namespace
    wherever it is used). Port-forward dials a pod's localhost this way, as the
    kubelet does."""
    return in_netns(path, lambda: socket.socket(family, socket.SOCK_STREAM))


def _libc_call(name: str, *args: Any) -> None:
    if _libc is None or getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno() if _libc is not None else 38
        raise OSError(err, f"{name}: {os.strerror(err)}")


def shared_netns_dir() -> None:
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


def loopback_up() -> None:
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
            loopback_up()
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
