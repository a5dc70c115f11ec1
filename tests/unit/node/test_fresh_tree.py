"""Looking a container's command up in its fresh tree from the image's listing
(runtimes/rootfs.py FreshTree, process.py _resolve) gives what looking on the
filesystem gives: random images with executables, plain files, directories,
symlinks (relative, absolute, to the host, dangling) and mounts over and above
the candidates; and the host's PATH lookups, remembered for 2 s, notice a
program installed since."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from kybern.node.runtimes import process
from kybern.node.runtimes.base import Mount
from kybern.node.runtimes.rootfs import FreshTree, make_tree

NAMES = ["tool", "sh", "run", "x"]
DIRS = ["bin", "usr/bin", "usr/local/bin", "opt/app", "sbin"]


def _random_image(root: Path, rng: random.Random, host_dir: Path) -> None:
    root.mkdir(parents=True)
    for d in rng.sample(DIRS, rng.randint(1, len(DIRS))):
        p = root / d
        if rng.random() < 0.15 and not p.exists() and "/" not in d:  # a directory that is a symlink
            target = rng.choice(["usr/bin", str(host_dir), "nowhere"])
            os.symlink(target, p)
            continue
        p.mkdir(parents=True, exist_ok=True)
        for n in rng.sample(NAMES, rng.randint(0, len(NAMES))):
            f = p / n
            kind = rng.random()
            if kind < 0.5:
                f.write_text("#!/bin/sh\necho hi\n")
                f.chmod(rng.choice([0o755, 0o700, 0o644, 0o711, 0o600]))
            elif kind < 0.65:
                f.mkdir()
            elif kind < 0.8:
                os.symlink(rng.choice(["../bin/tool", f"{host_dir}/tool", "/nonexistent", "tool"]), f)
            else:
                f.write_text("data")


@pytest.mark.parametrize("seed", range(60))
def test_listing_answers_as_the_filesystem(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    host = tmp_path / "host"
    host.mkdir()
    (host / "tool").write_text("#!/bin/sh\n")
    (host / "tool").chmod(0o755)
    image = tmp_path / "image"
    _random_image(image, rng, host)
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "run").write_text("#!/bin/sh\n")
    (vol / "run").chmod(0o755)
    mounts = [Mount(container_path="/etc/resolv.conf", host_path=str(tmp_path / "resolv.conf"))]
    for _ in range(rng.randint(0, 2)):
        where = rng.choice(["/opt/app", "/usr/local/bin", "/bin/run", "/data"])
        parts = where.strip("/").split("/")
        if any((image / "/".join(parts[:i])).is_symlink() for i in range(1, len(parts))):
            continue  # a mount below a symlinked directory: not what this test is about
        mounts.append(Mount(container_path=where, host_path=str(vol)))
    mounts = list({m.container_path: m for m in mounts}.values())
    rootfs = tmp_path / "c" / "rootfs"
    make_tree(image, f"sha256:{seed}", rootfs, mounts, rootfs)
    tree = FreshTree(str(image), f"sha256:{seed}", mounts)
    path_env = ":".join(["/" + d for d in rng.sample(DIRS, 3)] + [str(host)])
    for argv0 in NAMES + ["/bin/tool", "/usr/bin/sh", "/opt/app/run", "/bin/run"]:
        process._host_lookups.clear()
        assert process._resolve(argv0, rootfs, str(rootfs), path_env, tree) == \
            process._resolve(argv0, rootfs, str(rootfs), path_env), (argv0, path_env)


def test_a_host_program_installed_since_is_found_after_the_ttl(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(process, "_HOST_LOOKUP_TTL", 0.2)
    process._host_lookups.clear()
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    assert process._resolve("newtool", rootfs, str(rootfs), str(bindir)) is None
    (bindir / "newtool").write_text("#!/bin/sh\n")
    (bindir / "newtool").chmod(0o755)
    import time

    time.sleep(0.25)
    assert process._resolve("newtool", rootfs, str(rootfs), str(bindir)) == (str(bindir / "newtool"), True)
