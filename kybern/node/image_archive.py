"""Image tarballs made elsewhere, unpacked into a directory the image store imports
(`kybern image import REF FILE.tar`):

- a docker archive (`docker save`, `skopeo copy ... docker-archive:`): `manifest.json`
  naming the config and the layer tarballs;
- an OCI image layout archive (`skopeo copy ... oci-archive:`, newer `docker save`):
  `index.json` -> manifest -> config and layer blobs;
- anything else: a plain root filesystem tarball (`docker export`, `tar -C dir -c .`).

Layers are applied in order with the OCI whiteouts (`.wh.NAME` removes NAME from the
layers below, `.wh..wh..opq` empties its directory). The image config's Entrypoint,
Cmd, Env, WorkingDir and User become the stored image's config. Nothing is extracted outside
the target (tarfile's `tar` filter: no absolute or `..` member names, no writing
through a symlink out of the tree; absolute symlinks themselves are kept, images are
full of them); device and fifo members are skipped (containers use the host's /dev).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


class ImageArchiveError(ValueError):
    pass


def unpack(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> dict[str, Any]:
    """Unpack `archive` into the existing empty directory `dest`; the image config
    found (entrypoint, cmd, env, workingDir; empty for a plain rootfs tarball)."""
    dest = Path(dest)
    try:
        with tarfile.open(archive, "r:*") as outer:
            names = set(outer.getnames())
            if "manifest.json" in names or "index.json" in names:
                return _unpack_image(outer, names, dest)
            _apply_layer(outer, dest)
            return {}
    except tarfile.ReadError:
        raise ImageArchiveError(f"{archive}: neither a directory nor a tar archive (plain, gzip, bzip2 or xz)") \
            from None
    except tarfile.TarError as e:
        raise ImageArchiveError(f"{archive}: {e}") from None


def _read(outer: tarfile.TarFile, name: str) -> bytes:
    f = outer.extractfile(name)
    if f is None:
        raise ImageArchiveError(f"{name} is not a file in the archive")
    return f.read()


def _unpack_image(outer: tarfile.TarFile, names: set[str], dest: Path) -> dict[str, Any]:
    if "manifest.json" in names:  # docker archive (newer docker writes both: this one is simpler)
        entries = json.loads(_read(outer, "manifest.json"))
        if not entries:
            raise ImageArchiveError("manifest.json lists no image")
        if len(entries) > 1:
            raise ImageArchiveError(f"the archive holds {len(entries)} images; save one image per archive")
        config = json.loads(_read(outer, entries[0]["Config"]))
        layers = list(entries[0].get("Layers") or [])
    else:
        index = json.loads(_read(outer, "index.json"))
        manifests = index.get("manifests") or []
        if len(manifests) != 1:
            raise ImageArchiveError(f"index.json lists {len(manifests)} manifests; expected one")
        manifest = json.loads(_read(outer, _blob(manifests[0]["digest"])))
        if "manifests" in manifest:  # an image index (several platforms)
            raise ImageArchiveError("the archive holds a multi-platform index; save a single-platform image")
        config = json.loads(_read(outer, _blob(manifest["config"]["digest"])))
        layers = [_blob(layer["digest"]) for layer in manifest.get("layers") or []]
    for name in layers:
        f = outer.extractfile(name)
        if f is None:
            raise ImageArchiveError(f"layer {name} is missing from the archive")
        with tarfile.open(fileobj=f, mode="r:*") as layer:
            _apply_layer(layer, dest)
    c = config.get("config") or {}
    out: dict[str, Any] = {}
    for theirs, ours in (("Entrypoint", "entrypoint"), ("Cmd", "cmd"), ("Env", "env"), ("WorkingDir", "workingDir"),
                         ("User", "user")):
        if c.get(theirs):
            out[ours] = c[theirs]
    return out


def _blob(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def _inside(dest: Path, rel: str) -> Path | None:
    """dest/rel if it stays in dest once symlinks are followed, else None."""
    target = Path(os.path.realpath(dest / rel))
    root = Path(os.path.realpath(dest))
    return target if target == root or target.is_relative_to(root) else None


def _remove(path: Path) -> None:
    """Remove `path` itself: a symlink is unlinked, never followed."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _apply_layer(layer: tarfile.TarFile, dest: Path) -> None:
    members = layer.getmembers()
    keep: list[tarfile.TarInfo] = []
    for m in members:  # this layer's whiteouts first: they apply to the layers below
        name = os.path.normpath(m.name.lstrip("/"))
        base, parent = os.path.basename(name), os.path.dirname(name)
        if base == OPAQUE:
            d = _inside(dest, parent) if parent else dest
            if d is not None and d.is_dir():
                for child in list(d.iterdir()):
                    _remove(child)
        elif base.startswith(WHITEOUT):
            if _inside(dest, parent or ".") is not None:  # the entry itself, not what a symlink names
                _remove(dest / parent / base[len(WHITEOUT):])
        elif not (m.ischr() or m.isblk() or m.isfifo()):
            keep.append(m)
    for m in keep:
        rel = os.path.normpath(m.name.lstrip("/"))
        existing = dest / rel
        # an upper layer's entry replaces the lower one's (a directory stays, merged), never
        # through a symlinked parent that leads out of the tree
        if existing.is_symlink() or (existing.exists() and not (existing.is_dir() and m.isdir())):
            if _inside(dest, os.path.dirname(rel) or ".") is not None:
                _remove(existing)
        layer.extract(m, dest, filter=_filter)


def _filter(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    try:
        return tarfile.tar_filter(member, path)
    except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
        if member.issym():  # /etc/localtime -> /usr/share/zoneinfo/UTC: kept as the image has it
            return member
        raise


def is_archive(path: str | os.PathLike[str]) -> bool:
    return os.path.isfile(path) and tarfile.is_tarfile(path)
