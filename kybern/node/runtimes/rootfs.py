"""A container's private tree: a copy of its image's files, with its volumes
placed inside and its working directory made.

Why a copy: what a container writes must never reach the image or a restarted
instance, and this runtime has no overlay (it runs without root too; ext4 has
no reflinks). Why not `shutil.copytree`: for the small images pods usually run
it is mostly Python and syscalls per file (a directory scan, stat, xattr list,
chmod and utime per file, each through several layers), paid again for every
container. The image's listing is read once per image (its content digest
names it) and each copy replays it: one open/copy/close per file, modes and
times as copytree keeps them, extended attributes only where the image has any.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from kybern.node.runtimes.base import Mount
from kybern.node.runtimes.mounts import place_mount


@dataclass(frozen=True)
class _Entry:
    rel: str
    kind: str  # "d" directory, "f" regular file, "l" symlink, "o" anything else (copied by shutil)
    mode: int
    times: tuple[int, int]  # atime_ns, mtime_ns
    link: str = ""
    size: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()


_listings: dict[tuple[str, str], list[_Entry]] = {}


def _xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for n in names:
        try:
            out.append((n, os.getxattr(path, n, follow_symlinks=False)))
        except OSError:
            continue
    return tuple(out)


def _listing(root: str) -> list[_Entry]:
    """Everything under `root`, parents before children (the top directory first, rel "")."""
    def entry(path: str, rel: str) -> _Entry:
        st = os.lstat(path)
        m = st.st_mode
        kind = "d" if stat.S_ISDIR(m) else "f" if stat.S_ISREG(m) else "l" if stat.S_ISLNK(m) else "o"
        return _Entry(rel, kind, stat.S_IMODE(m), (st.st_atime_ns, st.st_mtime_ns),
                      os.readlink(path) if kind == "l" else "", st.st_size,
                      _xattrs(path) if kind != "l" else ())

    out = [entry(root, "")]
    todo = [""]
    while todo:
        rel = todo.pop()
        with os.scandir(os.path.join(root, rel)) as it:
            names = sorted(e.name for e in it)
        for name in names:
            r = os.path.join(rel, name) if rel else name
            e = entry(os.path.join(root, r), r)
            out.append(e)
            if e.kind == "d":
                todo.append(r)
    return out


def listing(root: str, key: str) -> list[_Entry]:
    """The image's listing, read once per (root, content digest)."""
    k = (root, key)
    got = _listings.get(k)
    if got is None:
        if len(_listings) > 64:
            _listings.clear()
        got = _listings[k] = _listing(root)
    return got


class _Index:
    """An image's listing by path, and the answers already given for it."""

    def __init__(self, entries: list[_Entry]) -> None:
        self.entries = {e.rel: e for e in entries}
        self.verdicts: dict[tuple[str, int], bool | None] = {}


_indexes: dict[tuple[str, str], _Index] = {}


class FreshTree:
    """What a container's tree holds right after make_tree(), from its image's
    listing instead of the filesystem: the runtime looks the command up along
    PATH at each start, one stat per directory otherwise. Says None where the
    listing cannot tell: a symlink on the way (it may point anywhere, the host
    included: there is no chroot) or a mount at or above the path."""

    def __init__(self, image_root: str, image_id: str, mounts: list[Mount]) -> None:
        k = (image_root, image_id)
        index = _indexes.get(k)
        if index is None:
            if len(_indexes) > 64:
                _indexes.clear()
            index = _indexes[k] = _Index(listing(image_root, image_id))
        self._index = index
        self._mounts = [os.path.normpath("/" + m.container_path).strip("/") for m in mounts]
        self._xbits = 0o111 if os.geteuid() == 0 else 0o100  # os.access(X_OK) on our own copy

    def executable(self, rel: str) -> bool | None:
        """Is `rel` (relative to the tree's root) an executable regular file?"""
        if "." in rel or "//" in rel:
            rel = os.path.normpath(rel)
            if rel.startswith(".."):
                return None
        for m in self._mounts:
            if rel == m or rel.startswith(m + "/") or m == "":
                return None
        key = (rel, self._xbits)
        verdicts = self._index.verdicts
        if key not in verdicts:
            if len(verdicts) > 4096:
                verdicts.clear()
            verdicts[key] = self._from_listing(rel)
        return verdicts[key]

    def _from_listing(self, rel: str) -> bool | None:
        entries = self._index.entries
        parts = rel.split("/")
        for i in range(1, len(parts)):
            e = entries.get("/".join(parts[:i]))
            if e is None:
                return False
            if e.kind == "l":
                return None
            if e.kind != "d":
                return False
        e = entries.get(rel)
        if e is None:
            return False
        if e.kind == "l":
            return None
        return e.kind == "f" and bool(e.mode & self._xbits)


def copy_image(src: str, dst: str, entries: list[_Entry]) -> None:
    """Replay `entries` (from `listing(src)`) under `dst`, which must not exist."""
    dirs: list[_Entry] = []
    for e in entries:
        s = os.path.join(src, e.rel) if e.rel else src
        d = os.path.join(dst, e.rel) if e.rel else dst
        if e.kind == "d":
            os.mkdir(d, 0o700)  # its own mode and times once filled
            dirs.append(e)
        elif e.kind == "f":
            fi = os.open(s, os.O_RDONLY | os.O_CLOEXEC)
            try:
                fo = os.open(d, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                try:
                    left = e.size
                    while left > 0:
                        n = os.sendfile(fo, fi, None, left)
                        if n == 0:
                            break
                        left -= n
                    for name, value in e.xattrs:
                        os.setxattr(fo, name, value)
                    os.fchmod(fo, e.mode)
                    os.utime(fo, ns=e.times)
                finally:
                    os.close(fo)
            finally:
                os.close(fi)
        elif e.kind == "l":
            os.symlink(e.link, d)
        else:
            shutil.copy2(s, d, follow_symlinks=False)
    for e in reversed(dirs):  # children first: filling a directory moves its mtime
        d = os.path.join(dst, e.rel) if e.rel else dst
        for name, value in e.xattrs:
            os.setxattr(d, name, value)
        os.chmod(d, e.mode)
        os.utime(d, ns=e.times)


def make_tree(image_root: Path, image_id: str, rootfs: Path, mounts: list[Mount], cwd: Path) -> None:
    """The container's tree: the image copied to `rootfs` (whose parent is made
    here), its mounts placed inside (parents first), its working dir."""
    rootfs.parent.mkdir(parents=True)
    src, dst = str(image_root), str(rootfs)
    entries = listing(src, image_id)
    copy_image(src, dst, entries)
    # the mounts' parents, top down, from what the copy holds: one mkdir per missing
    # directory (pathlib's mkdir(parents=True) tries each child first and fails)
    dirs = {e.rel for e in entries if e.kind == "d"}
    for m in sorted(mounts, key=lambda m: m.container_path.count("/")):
        parts = [p for p in m.container_path.split("/") if p not in ("", ".")]
        if ".." not in parts:
            for i in range(1, len(parts)):
                rel = "/".join(parts[:i])
                if rel not in dirs:
                    with contextlib.suppress(FileExistsError):  # a file there: place_mount says so
                        os.mkdir(f"{dst}/{rel}")
                    dirs.add(rel)
        place_mount(rootfs, m)  # parents first: nested mounts land inside them
    if cwd != rootfs:
        cwd.mkdir(parents=True, exist_ok=True)
