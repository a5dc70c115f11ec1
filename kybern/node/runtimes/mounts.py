"""How the `process` runtime shows a volume inside a container without a mount
namespace: a symlink at `<rootfs>/<mountPath>` pointing at the volume's
directory on the host. What the image had at that path is shadowed (removed
from the container's private copy), as a mount would hide it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kybern.node.runtimes.base import ContainerError, Mount


def place_mount(rootfs: Path, m: Mount) -> None:
    parts = [p for p in m.container_path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ContainerError("CreateContainerError", f"invalid mount path {m.container_path!r}")
    target = rootfs.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:  # the usual case, a path the image does not have: one call
        os.symlink(m.host_path, target)
        return
    except FileExistsError:
        pass
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    os.symlink(m.host_path, target)
