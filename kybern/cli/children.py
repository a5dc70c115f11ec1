"""Processes `kybern up` and `kybern server` run beside themselves (apiserver
workers, the built-in node's agent): started, started again if they exit, and
tied to the first process with PR_SET_PDEATHSIG, so a killed `kybern up`
leaves none behind."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import sys

log = logging.getLogger("kybern")

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Child:
    """`python -m kybern.cli.main ARGS...`, kept running until `stop()`.

    `own_session`: the child is not in the terminal's process group, so a
    Ctrl-C reaches only the first process, which then stops the child in
    order (the agent must stop its pods before the apiserver goes away)."""

    def __init__(self, name: str, args: list[str], *, stop_timeout: float = 10.0,
                 own_session: bool = False) -> None:
        self.name = name
        self.args = args
        self.stop_timeout = stop_timeout
        self.own_session = own_session
        self.proc: asyncio.subprocess.Process | None = None
        self._stopping = False

    async def run(self) -> None:
        """Run until cancelled or stopped, starting the child again (with
        backoff) whenever it exits."""
        delay = 0.5
        while not self._stopping:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kybern.cli.main", *self.args, preexec_fn=die_with_parent,
                start_new_session=self.own_session)
            try:
                code = await self.proc.wait()
            except asyncio.CancelledError:
                await self.stop()
                raise
            if self._stopping:
                return
            log.warning("%s exited with %s; starting it again in %.1fs", self.name, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout`; no restart after this."""
        self._stopping = True
        p = self.proc
        if p is None or p.returncode is not None:
            return
        p.terminate()
        try:
            await asyncio.wait_for(p.wait(), self.stop_timeout)
        except TimeoutError:
            log.warning("%s did not stop in %.0fs; killing it", self.name, self.stop_timeout)
            p.kill()
            await p.wait()
