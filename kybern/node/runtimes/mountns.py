"""A container's own mount namespace (the `process` runtime as root): what lets
a program read its volumes at their absolute `mountPath`s (`cat /etc/config/x`)
and its pod's resolv.conf at `/etc/resolv.conf`.

The namespace is made on the calling thread (unshare, the mounts, then back to
the thread's own namespace; ~0.2 ms) and held by an fd of the agent until the
container is removed; the container's process, `kubectl exec` and exec probes
enter it (`/proc/<agent pid>/fd/<fd>`). Two shapes:

- **the host's tree** (every mountPath exists on the host with the volume's
  type): a copy of the host's mounts, slave to them, with each volume
  bind-mounted over its path. Nothing changes on the host; the container
  still reads and writes the host's files elsewhere, as without a namespace.
- **a private root** (a mountPath the host does not have, such as `/data`):
  an overlay of the host's root filesystem with a tmpfs on top, every other
  filesystem of the host (`/proc`, `/dev`, `/sys`, `/run`, other disks) and
  the agent's data dir bound at their paths, the missing mount points made in
  the overlay and the volumes bound there (and at their own host paths, where
  the symlinks of the container's tree lead). Writes to other paths on the
  host's root filesystem stay in the container (lost when it is removed); the
  host's other filesystems are shared as before. Made this way only when needed: it
  costs ~1 ms more per container start.

In both, `/var/run/netns` (the pods' network namespaces) is not carried over:
a copy of those mounts would keep a deleted pod's netns alive, and every new
pod's mount would propagate into every container.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
import sys
from collections.abc import Iterator

from kybern.network.netns import NETNS_DIR, libc_call, setns
from kybern.node.runtimes.base import ContainerError, Mount

_CLONE_NEWNS, _CLONE_FS = 0x00020000, 0x00000200
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_MOVE, _MS_REC, _MS_SLAVE = 0x1, 0x20, 0x1000, 0x2000, 0x4000, 0x80000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x2, 0x4, 0x8
_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def supported() -> bool:
    """As root on Linux, unless switched off (KYBERN_MOUNT_NAMESPACES=0)."""
    return _libc is not None and os.geteuid() == 0 and os.environ.get("KYBERN_MOUNT_NAMESPACES", "1") != "0"


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    assert _libc is not None
    if _libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                   flags, data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or fstype or ''} on {target}: {os.strerror(err)}")


def _fits(target: str, source_is_dir: bool) -> bool:
    """`target` exists on the host as what a bind mount of the source needs."""
    try:
        st = os.stat(target)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) == source_is_dir


def _top_mounts(exclude: str) -> list[str]:
    """The mount points right under the root filesystem (their submounts come
    along with a recursive bind), outside `exclude`."""
    points = []
    with open("/proc/thread-self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")  # \040 for a space, as the kernel escapes
            if mp != "/" and mp != exclude and not mp.startswith(exclude + "/"):
                points.append(mp)
    tops: list[str] = []
    for mp in sorted(points):
        if not any(mp.startswith(t + "/") for t in tops):
            tops.append(mp)
    return tops


@contextlib.contextmanager
def _own_namespace(copy_of: int | None = None, *, new: bool = True) -> Iterator[None]:
    """Inside a new mount namespace of the calling thread for the block (a copy
    of its own, or of the one open as `copy_of`; with new=False, inside
    `copy_of` itself), then back in the thread's own, with its working
    directory as it was."""
    home = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    cwd = os.open(".", os.O_PATH | os.O_CLOEXEC)
    try:
        # the thread's own root and cwd first (setns needs them unshared); a new namespace
        # left behind would be torn down at once, and that waits for an RCU grace period
        libc_call("unshare", _CLONE_FS)
        try:
            if copy_of is not None:
                setns(copy_of, _CLONE_NEWNS)
            if new:
                libc_call("unshare", _CLONE_NEWNS)
            yield
        finally:
            setns(home, _CLONE_NEWNS)
            os.fchdir(cwd)
    finally:
        os.close(home)
        os.close(cwd)


_template: int | None = None  # an fd of the namespace each container's is copied from


def prepare(*mount_points: str) -> None:
    """Make the template namespace now (at the runtime's start: its one unmount can
    take ~0.2 s, not for a pod to wait on), and the host directories every pod
    mounts over (empty, made once), so those mounts need no private root."""
    for d in mount_points:
        os.makedirs(d, exist_ok=True)
    _template_namespace()


def _template_namespace() -> int:
    """The host's mounts as a slave copy without /var/run/netns, made once: each
    container's namespace is a copy of it, so no copy of the pods' netns mounts is
    made and undone per container (an unmount waits for the kernel's RCU grace
    period: ~0.3 ms each, measured)."""
    global _template
    if _template is None:
        with _own_namespace():
            _mount(None, "/", None, _MS_REC | _MS_SLAVE)  # the host's mounts still reach it, ours stay here
            with contextlib.suppress(OSError):
                libc_call("umount2", NETNS_DIR.encode(), _MNT_DETACH)
            _template = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    return _template


def mount_tmpfs(path: str, size: int, gid: int | None = None, *, shm: bool = False) -> None:
    """A tmpfs of `size` bytes at the host directory `path`, in the template
    namespace only: every container namespace copied from it afterwards shows
    it there (the same files: one superblock), the host's mount table does not,
    and it goes away with the agent's namespaces if nobody unmounts it.
    shm: a pod's /dev/shm, as containerd's (sticky, nosuid, nodev, noexec)."""
    with _own_namespace(_template_namespace(), new=False):
        owner = f"mode=2777,gid={gid}" if gid is not None else "mode=1777" if shm else "mode=0777"
        _mount("tmpfs", path, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC if shm else 0, f"{owner},size={size}")


def mount_overlay(lower: str, upper: str, work: str, target: str) -> None:
    """An overlayfs at `target` (lower: read-only, upper/work: the writes), in the
    template namespace only, as mount_tmpfs: the linux runtime's OCI runtime runs
    there and sees it; the host's mount table does not, and it goes away with
    the agent's namespaces if nobody unmounts it."""
    with _own_namespace(_template_namespace(), new=False):
        _mount("overlay", target, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")


def template_path() -> str:
    """A path that enters the template namespace (the agent holds it by an fd)."""
    return f"/proc/{os.getpid()}/fd/{_template_namespace()}"


def unmount(path: str) -> None:
    """Undo mount_tmpfs (containers still running keep their copy until they exit)."""
    with _own_namespace(_template_namespace(), new=False), contextlib.suppress(OSError):
        libc_call("umount2", path.encode(), _MNT_DETACH)


def make(mounts: list[Mount], scratch: str, keep: list[str]) -> int:
    """A new mount namespace showing `mounts` at their container paths, as an
    fd (close-on-exec). `scratch`: a path for the private root's overlay,
    made only when one is needed; `keep`: host directories a private root
    must show as they are (the agent's data dir: the containers' trees, logs
    and volumes live there)."""
    kinds: list[bool] = []  # each source is a directory
    for m in mounts:
        if not m.container_path.startswith("/"):
            raise ContainerError("CreateContainerError", f"invalid mount path {m.container_path!r}: not absolute")
        try:
            kinds.append(stat.S_ISDIR(os.stat(m.host_path).st_mode))
        except OSError as e:
            raise ContainerError("CreateContainerError", f"mount {m.container_path}: {m.host_path}: {e.strerror}") from e
    private_root = not all(_fits(m.container_path, d) for m, d in zip(mounts, kinds, strict=True))
    sources: list[int] = []
    try:
        with _own_namespace(copy_of=_template_namespace()):
            # opened in this namespace, before its root may change: a bind takes its source from here
            sources = [os.open(m.host_path, os.O_PATH | os.O_CLOEXEC) for m in mounts]
            if private_root:  # the volumes' own paths too: the symlinks in the container's tree lead there
                _private_root(scratch, keep + [m.host_path for m in mounts])
            for m, fd, is_dir in zip(mounts, sources, kinds, strict=True):
                _place(m, fd, is_dir)
            return os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise ContainerError("CreateContainerError", f"failed to set up the container's mounts: {e}") from e
    finally:
        for fd in sources:
            os.close(fd)


def _private_root(scratch: str, keep: list[str]) -> None:
    """Make the namespace's root an overlay of the host's root filesystem (a
    tmpfs on top) with the host's other filesystems and `keep` bound in."""
    os.mkdir(scratch)
    tops = _top_mounts(scratch)
    _mount("tmpfs", scratch, "tmpfs", 0, "mode=0755")
    upper, work, root = (os.path.join(scratch, d) for d in ("upper", "work", "root"))
    for d in (upper, work, root):
        os.mkdir(d)
    _mount("overlay", root, "overlay", 0, f"lowerdir=/,upperdir={upper},workdir={work}")
    bound: list[str] = []
    for path in tops + sorted(keep):
        if any(path == b or path.startswith(b + "/") for b in bound):
            continue  # already there with what it is under
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            _mount(path, root + path, None, _MS_BIND | _MS_REC)
            bound.append(path)
    with contextlib.suppress(OSError):  # our own scratch mount, carried along by a bind
        libc_call("umount2", (root + scratch).encode(), _MNT_DETACH)
    _mount(root, "/", None, _MS_MOVE)
    # re-enter this namespace: its root is now the overlay, for this thread's paths too
    ns = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(ns, _CLONE_NEWNS)
    finally:
        os.close(ns)


def _place(m: Mount, fd: int, is_dir: bool) -> None:
    """Bind the volume open as `fd` at its container path (made when missing)."""
    target = m.container_path
    if not _fits(target, is_dir):
        with contextlib.suppress(FileNotFoundError):
            if os.path.isdir(target) and not os.path.islink(target):
                os.rmdir(target)  # only empty: a directory with content keeps it, and the bind fails below
            else:
                os.unlink(target)
        if is_dir:
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    _mount(f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC)
    if m.readonly:
        _mount(None, target, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_REC)
