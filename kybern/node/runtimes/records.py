"""The node's records on disk (a sandbox's, a container's state, a pod network's):
JSON, replaced atomically, so an agent killed mid-write leaves the old record or
the new one, never half of one."""

from __future__ import annotations

import os
from typing import Any

import orjson


def write_record(path: str | os.PathLike[str], data: dict[str, Any], *, atomic: bool = True) -> None:
    """`data` as JSON at `path`; not `atomic`: written in place, for a file whose
    loss or tear is harmless (the reader treats it as missing)."""
    target = f"{os.fspath(path)}.tmp" if atomic else os.fspath(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, orjson.dumps(data))
    finally:
        os.close(fd)
    if atomic:
        os.replace(target, path)
