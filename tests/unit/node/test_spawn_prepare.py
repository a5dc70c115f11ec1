"""The spawn worker makes a container's tree and, as root, its mount namespace
(spawnd.py's "prepare"): what it makes must be what the agent would have made
itself, its failures must reach the agent as the same errors, and a namespace it
holds must go when the agent releases it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from kybern.node.runtimes import mountns
from kybern.node.runtimes import spawn as sp
from kybern.node.runtimes.base import ContainerError, Mount
from kybern.node.runtimes.rootfs import make_tree

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process runtime"),
    pytest.mark.skipif(not sp._FAST, reason="no setpriv or pidfds here: no spawn worker"),
]


@pytest.fixture
async def worker():  # type: ignore[no-untyped-def]
    w = sp.SpawnWorker()
    w.start()
    yield w
    await w.close()


def _image(tmp_path: Path) -> Path:
    img = tmp_path / "image"
    (img / "app").mkdir(parents=True)
    (img / "app" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (img / "app" / "run.sh").chmod(0o750)
    os.symlink("app/run.sh", img / "start")
    return img


def _listing(root: Path) -> dict[str, tuple[str, int, str]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            kind = "l" if p.is_symlink() else "d" if p.is_dir() else "f"
            out[str(p.relative_to(root))] = (kind, st.st_mode & 0o7777,
                                              os.readlink(p) if kind == "l" else p.read_text() if kind == "f" else "")
    return out


async def test_the_workers_tree_is_the_one_the_agent_makes(tmp_path: Path, worker: sp.SpawnWorker) -> None:
    img = _image(tmp_path)
    vol = tmp_path / "vol"
    vol.mkdir()
    mounts = [Mount(container_path="/etc/config", host_path=str(vol)),
              Mount(container_path="/app/run.sh", host_path=str(vol), readonly=True)]  # shadows the image's file
    theirs = tmp_path / "w" / "rootfs"
    got = await worker.prepare("c1", mounts, {"image_root": str(img), "image_id": "id1", "rootfs": str(theirs),
                                              "cwd": str(theirs / "work" / "dir")}, None)
    assert got == ""  # no mount namespace asked for
    ours = tmp_path / "a" / "rootfs"
    make_tree(img, "id1", ours, mounts, ours / "work" / "dir")
    assert _listing(theirs) == _listing(ours)
    assert os.readlink(theirs / "etc" / "config") == str(vol)
    assert (theirs / "work" / "dir").is_dir()


async def test_a_bad_mount_path_is_the_same_container_error(tmp_path: Path, worker: sp.SpawnWorker) -> None:
    img = _image(tmp_path)
    rootfs = tmp_path / "c" / "rootfs"
    with pytest.raises(ContainerError) as e:
        await worker.prepare("c2", [Mount(container_path="/../escape", host_path=str(tmp_path))],
                             {"image_root": str(img), "image_id": "id2", "rootfs": str(rootfs), "cwd": str(rootfs)},
                             None)
    assert e.value.reason == "CreateContainerError" and "invalid mount path" in e.value.message


async def test_a_failed_copy_is_the_same_os_error(tmp_path: Path, worker: sp.SpawnWorker) -> None:
    img = _image(tmp_path)
    rootfs = tmp_path / "c" / "rootfs"
    rootfs.parent.mkdir()  # make_tree makes the tree's parent itself: an existing one fails
    with pytest.raises(FileExistsError):
        await worker.prepare("c3", [], {"image_root": str(img), "image_id": "id3", "rootfs": str(rootfs),
                                        "cwd": str(rootfs)}, None)


async def test_without_a_worker_the_agent_is_told_to_do_it_itself(tmp_path: Path) -> None:
    w = sp.SpawnWorker()  # never started
    with pytest.raises(sp.WorkerGone):
        await w.prepare("c4", [], None, None)


def _mnt_fds(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("mnt:["):
            out.add(fd)
    return out


@pytest.mark.skipif(not mountns.supported(), reason="mount namespaces need root")
async def test_the_mount_namespace_shows_the_volume_and_goes_when_released(tmp_path: Path,
                                                                           worker: sp.SpawnWorker) -> None:
    mountns.prepare()  # the agent's template namespace, which the worker's copies start from
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "greeting").write_text("hello")
    target = "/var/run/secrets/kubernetes.io/serviceaccount"  # on the host, empty: a bind over it
    os.makedirs(target, exist_ok=True)
    mnt = await worker.prepare("c5", [Mount(container_path=target, host_path=str(vol), readonly=True)], None,
                               {"scratch": str(tmp_path / "mnt"), "keep": [str(tmp_path)],
                                "template": mountns.template_path()})
    assert worker.pid is not None and mnt.startswith(f"/proc/{worker.pid}/fd/")
    assert not os.path.exists(f"{target}/greeting")  # the host does not see it
    r, w = os.pipe()
    dn = os.open(os.devnull, os.O_RDONLY)
    try:
        proc = await sp.spawn(["cat", f"{target}/greeting"], "/bin/cat", cwd="/", env={"PATH": "/bin:/usr/bin"},
                              stdio=[dn, w, w], namespaces={"mnt": mnt}, tty=False, preexec=lambda: None,
                              worker=worker)
    finally:
        os.close(w)
        os.close(dn)
    assert (await sp.read_to_eof(r)).decode() == "hello"
    assert await proc.wait() == 0
    held = _mnt_fds(worker.pid)
    assert mnt.rsplit("/", 1)[1] in held
    worker.release("c5")
    for _ in range(100):
        if mnt.rsplit("/", 1)[1] not in _mnt_fds(worker.pid):
            break
        await asyncio.sleep(0.02)
    assert mnt.rsplit("/", 1)[1] not in _mnt_fds(worker.pid)
