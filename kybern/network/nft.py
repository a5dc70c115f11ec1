"""What the node's rule writers (the service proxy, the NetworkPolicy enforcer)
share about owning an nftables table: running `nft` (or another tool) with a
script on stdin, holding a lock file while their table exists, and deleting the
tables of writers that died without cleaning up (nobody holds their lock).
Several agents and clusters share one kernel, so each writer owns one table
named after its instance and never touches the others' while they live."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


async def run(*argv: str, stdin: bytes | None = None) -> tuple[int, str]:
    """(exit code, stdout+stderr); 127 when the program cannot be started."""
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
    except OSError as e:
        return 127, str(e)
    out, _ = await proc.communicate(stdin)
    return proc.returncode or 0, out.decode(errors="replace")


def hold_lock(lock_dir: Path, ident: str) -> int:
    """Take `<lock_dir>/<ident>.lock` (blocking) and return its fd; close it to release."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"{ident}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _held(lock_dir: Path, ident: str) -> bool:
    fd = os.open(lock_dir / f"{ident}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


async def remove_orphan_tables(family: str, prefix: str, lock_dir: Path, own: str, what: str) -> None:
    """Delete every table `<family> <prefix><ident>` other than `own` whose lock
    `<lock_dir>/<ident>.lock` nobody holds (its writer is gone)."""
    _rc, out = await run("nft", "list", "tables")
    for line in out.splitlines():
        words = line.split()
        if len(words) != 3 or words[:2] != ["table", family] or not words[2].startswith(prefix):
            continue
        name = words[2]
        if name == own or _held(lock_dir, name[len(prefix):]):
            continue
        log.info("%s: removing table %s %s left by one that is gone", what, family, name)
        await run("nft", "-f", "-", stdin=delete_table(family, name).encode())


def delete_table(family: str, name: str) -> str:
    """An `nft -f` script deleting a table whether or not it exists."""
    return f"table {family} {name}\ndelete table {family} {name}\n"
