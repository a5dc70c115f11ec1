"""How a kybern process learns that one of its asyncio subprocesses exited.

Python 3.11's default (ThreadedChildWatcher) starts a thread per subprocess
that blocks in waitpid() until it exits: a `sleep 3600` container, a CNI
plugin, an `ip` call each cost a thread start on the event loop and, while
they live, a thread (its stack and its share of every later fork). A node
with 200 pods had 200 such threads. Python 3.12 switched the default to a
pidfd the event loop polls; `use_pidfd_child_watcher()` does the same on
3.11 (Linux >= 5.3), with whichever loop is running (as 3.12's does).
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from typing import Any, Self


class PidfdChildWatcher(asyncio.AbstractChildWatcher):
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def is_active(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def attach_loop(self, loop: Any) -> None:
        pass

    def add_child_handler(self, pid: int, callback: Any, *args: Any) -> None:
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(pid)
        loop._add_reader(pidfd, self._do_wait, loop, pid, pidfd, callback, args)  # type: ignore[attr-defined]

    def _do_wait(self, loop: Any, pid: int, pidfd: int, callback: Any, args: tuple[Any, ...]) -> None:
        loop._remove_reader(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
            returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped elsewhere (asyncio reports 255 then too)
            returncode = 255
        os.close(pidfd)
        callback(pid, returncode, *args)

    def remove_child_handler(self, pid: int) -> bool:
        return True


def use_pidfd_child_watcher() -> None:
    """Install the pidfd watcher for this process (Python 3.11 on Linux; later
    Pythons already use one)."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # kernel without pidfds
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_child_watcher(PidfdChildWatcher())
