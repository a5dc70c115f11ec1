"""Image tarballs into the local store: docker archives, OCI layout archives and plain
root filesystems, layers with whiteouts, the image config, and nothing written
outside the store however the archive is made. Real tar files, real `kybern image`."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kybern.node.image_archive import ImageArchiveError, unpack
from kybern.node.images import ImageStore


def layer(*entries: tuple[str, object, str]) -> bytes:
    """A layer tarball from (name, content or link target, kind) with kind f/x/d/l."""
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w") as t:
        for name, data, kind in entries:
            ti = tarfile.TarInfo(name)
            if kind == "d":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif kind == "l":
                ti.type, ti.linkname = tarfile.SYMTYPE, str(data)
                t.addfile(ti)
            else:
                raw = data if isinstance(data, bytes) else str(data).encode()
                ti.size, ti.mode = len(raw), 0o755 if kind == "x" else 0o644
                t.addfile(ti, io.BytesIO(raw))
    return b.getvalue()


def archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return path


CONFIG = {"config": {"Entrypoint": ["/bin/sh", "run.sh"], "Cmd": ["--serve"], "Env": ["GREETING=hi"],
                     "WorkingDir": "/app", "User": "101:101"}}
BASE = layer(("app", None, "d"), ("app/hello.txt", "one", "f"), ("app/old.txt", "old", "f"),
             ("app/cache", None, "d"), ("app/cache/a", "a", "f"), ("app/run.sh", "echo hi", "x"),
             ("etc", None, "d"), ("etc/localtime", "/usr/share/zoneinfo/UTC", "l"))
TOP = layer(("app/.wh.old.txt", "", "f"), ("app/hello.txt", "two", "f"),
            ("app/cache/.wh..wh..opq", "", "f"), ("app/cache/b", "b", "f"))


def check_tree(root: Path) -> None:
    assert (root / "app/hello.txt").read_text() == "two"  # the upper layer wins
    assert not (root / "app/old.txt").exists()  # whiteout
    assert sorted(p.name for p in (root / "app/cache").iterdir()) == ["b"]  # opaque directory
    assert (root / "etc/localtime").is_symlink() and str((root / "etc/localtime").readlink()) == \
        "/usr/share/zoneinfo/UTC"  # absolute symlinks kept as the image has them
    assert (root / "app/run.sh").stat().st_mode & 0o111


def test_docker_archive(tmp_path: Path) -> None:
    a = archive(tmp_path / "img.tar", {
        "manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["x:1"],
                                      "Layers": ["l1/layer.tar", "l2/layer.tar"]}]).encode(),
        "c.json": json.dumps(CONFIG).encode(), "l1/layer.tar": BASE, "l2/layer.tar": TOP})
    (tmp_path / "out").mkdir()
    cfg = unpack(a, tmp_path / "out")
    assert cfg == {"entrypoint": ["/bin/sh", "run.sh"], "cmd": ["--serve"], "env": ["GREETING=hi"],
                   "workingDir": "/app", "user": "101:101"}  # the user: the linux runtime's
    check_tree(tmp_path / "out")


def test_oci_layout_archive_with_gzip_layers(tmp_path: Path) -> None:
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict[str, object]:
        d = hashlib.sha256(data).hexdigest()
        blobs[f"blobs/sha256/{d}"] = data
        return {"digest": f"sha256:{d}", "size": len(data)}
    manifest = {"schemaVersion": 2, "config": blob(json.dumps(CONFIG).encode()),
                "layers": [blob(gzip.compress(BASE)), blob(TOP)]}
    index = {"schemaVersion": 2, "manifests": [blob(json.dumps(manifest).encode())]}
    a = archive(tmp_path / "oci.tar", {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
                                       "index.json": json.dumps(index).encode(), **blobs})
    (tmp_path / "out").mkdir()
    assert unpack(a, tmp_path / "out")["workingDir"] == "/app"
    check_tree(tmp_path / "out")


def test_nothing_lands_outside_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    evil = layer(("escape", str(outside), "l"), ("escape/pwned", "x", "f"))
    a = archive(tmp_path / "evil.tar", {"manifest.json": json.dumps(
        [{"Config": "c.json", "Layers": ["l.tar"]}]).encode(), "c.json": b"{}", "l.tar": evil})
    (tmp_path / "out").mkdir()
    with pytest.raises(ImageArchiveError, match="outside the destination"):
        unpack(a, tmp_path / "out")
    assert not (outside / "pwned").exists()
    (tmp_path / "out2").mkdir()
    with pytest.raises(ImageArchiveError, match="outside the destination"):
        unpack(archive(tmp_path / "dots.tar", {"../dots": b"x"}), tmp_path / "out2")
    assert not (tmp_path / "dots").exists()
    with pytest.raises(ImageArchiveError, match="neither a directory nor a tar archive"):
        unpack(Path(__file__), tmp_path / "out2")


def test_cli_imports_a_plain_rootfs_tarball_with_config_options(tmp_path: Path) -> None:
    rootfs = archive(tmp_path / "rootfs.tar", {"bin/tool": b"#!/bin/sh\necho tool\n", "data/x": b"x"})
    data_dir = tmp_path / "kybern"
    run = [sys.executable, "-m", "kybern.cli.main", "image"]
    p = subprocess.run([*run, "import", "--data-dir", str(data_dir), "--entrypoint", "/bin/tool", "--env", "A=1",
                        "--workdir", "/data", "--user", "1000:1000", "tools:2", str(rootfs)], capture_output=True,
                       text=True, check=True)
    assert p.stdout.strip() == f"imported tools:2 from {rootfs}"
    img = ImageStore(str(data_dir / "node")).get("tools:2")
    assert img is not None and img.config == {"entrypoint": ["/bin/tool"], "env": ["A=1"], "workingDir": "/data",
                                              "user": "1000:1000"}
    assert (img.rootfs / "data/x").read_text() == "x"
    p = subprocess.run([*run, "import", "--data-dir", str(data_dir), "--env", "NOEQUALS", "t:1", str(rootfs)],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "'NOEQUALS' is not NAME=VALUE" in p.stderr
    p = subprocess.run([*run, "rm", "--data-dir", str(data_dir), "tools:2", "nope:1"], capture_output=True, text=True)
    assert p.returncode != 0 and "removed tools:2" in p.stdout and "no such image: nope:1" in p.stderr
    assert ImageStore(str(data_dir / "node")).get("tools:2") is None
