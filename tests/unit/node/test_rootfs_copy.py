"""A container's copy of its image (runtimes/rootfs.py) against what
shutil.copytree(symlinks=True) makes of the same tree: same files, contents,
modes, mtimes, symlinks and extended attributes; writes to the copy never
reach the image."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from kybern.node.runtimes.base import Mount
from kybern.node.runtimes.rootfs import copy_image, listing, make_tree


def _image(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "usr/share/doc").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "bin/tool").write_text("#!/bin/sh\necho hi\n")
    (root / "bin/tool").chmod(0o755)
    (root / "usr/share/doc/README").write_bytes(os.urandom(300_000))  # several sendfile rounds at most
    (root / "usr/share/doc/README").chmod(0o640)
    (root / "secret").write_text("s")
    (root / "secret").chmod(0o600)
    (root / "setuid").write_text("x")
    (root / "setuid").chmod(0o4755)
    os.symlink("bin/tool", root / "link")
    os.symlink("/nonexistent/target", root / "dangling")
    (root / "usr/share").chmod(0o711)
    for i, p in enumerate(["bin/tool", "usr/share/doc/README", "usr/share/doc", "bin", "empty"]):
        os.utime(root / p, ns=(1_600_000_000_000_000_000 + i, 1_500_000_000_123_456_789 + i))
    try:
        os.setxattr(root / "secret", "user.kybern", b"v")
    except OSError:
        pass  # a filesystem without user xattrs: the rest still holds


def _describe(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                try:
                    xa = sorted((n, os.getxattr(p, n)) for n in os.listxattr(p))
                except OSError:
                    xa = []
                out[rel] = ("f", stat.S_IMODE(st.st_mode), st.st_mtime_ns, p.read_bytes(), xa)
    return out


def test_copy_matches_copytree(tmp_path: Path) -> None:
    img = tmp_path / "img"
    _image(img)
    want = tmp_path / "want"
    shutil.copytree(img, want, symlinks=True)
    got = tmp_path / "got"
    copy_image(str(img), str(got), listing(str(img), "sha256:a"))
    assert _describe(got) == _describe(want)
    assert stat.S_IMODE(got.stat().st_mode) == stat.S_IMODE(img.stat().st_mode)


def test_copies_are_private_and_listing_is_per_digest(tmp_path: Path) -> None:
    img = tmp_path / "img"
    _image(img)
    a, b = tmp_path / "a", tmp_path / "b"
    copy_image(str(img), str(a), listing(str(img), "sha256:b"))
    (a / "bin/tool").write_text("changed")
    (a / "new").write_text("n")
    copy_image(str(img), str(b), listing(str(img), "sha256:b"))
    assert (img / "bin/tool").read_text() == (b / "bin/tool").read_text() == "#!/bin/sh\necho hi\n"
    assert not (b / "new").exists() and not (img / "new").exists()
    # a new image content has a new digest, so a new listing
    (img / "added").write_text("+")
    c = tmp_path / "c"
    copy_image(str(img), str(c), listing(str(img), "sha256:c"))
    assert (c / "added").read_text() == "+"


def test_make_tree_places_mounts_and_workdir(tmp_path: Path) -> None:
    img = tmp_path / "img"
    _image(img)
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "f").write_text("v")
    rootfs = tmp_path / "ctr" / "rootfs"
    make_tree(img, "sha256:d", rootfs, [Mount(container_path="/data/x", host_path=str(vol)),
                                        Mount(container_path="/bin/tool", host_path=str(vol / "f"))],
              rootfs / "work/dir")
    assert (rootfs / "data/x/f").read_text() == "v"
    assert (rootfs / "bin/tool").read_text() == "v"  # a mount replaces the image's file
    assert (rootfs / "work/dir").is_dir()
    assert (img / "bin/tool").read_text().startswith("#!")
    with pytest.raises(FileExistsError):  # a container's directory is new; never copied over
        make_tree(img, "sha256:d", rootfs, [], rootfs)
