"""Standard streams of the process runtime's processes, for attach and exec.

`ContainerIO` is what a process reads and writes: pipes, or a pseudo-terminal
when the container (or the exec) asks for a TTY. The runtime keeps the stdin
pipe's write end open for a container with `stdin: true` (so the process does
not see end-of-file while nobody is attached, as upstream), fans the output
out to every attached session (`subscribe()`), and lets a session write stdin
and resize the terminal.

`spawn_exec()` runs a command in a container's environment (its env, working
directory and file tree as the process runtime resolves them) with such
streams: `kubectl exec`. Exec'd processes die with the agent (PDEATHSIG), and a
session that goes away kills its process group: in this runtime there is no
container namespace that would take them along later.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import os
import pty
import signal
import struct
import sys
import termios

Chunk = tuple[str, bytes] | None  # ("stdout"|"stderr", data); None: the process is gone

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _child_setup(tty: bool) -> None:  # runs in the child between fork and exec
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if tty:  # setsid() already ran: make the pty our controlling terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _EIOasEOF(asyncio.StreamReaderProtocol):
    """A pty master reads EIO once the last slave fd is closed: that is EOF."""

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            exc = None
        super().connection_lost(exc)


class ContainerIO:
    def __init__(self, tty: bool, stdin: bool) -> None:
        self.tty = tty
        self.stdin = stdin
        self.child: list[int] = []  # the child's stdin, stdout, stderr
        self.out_r = self.err_r = -1  # what the runtime reads
        self._in_w = -1  # where stdin data goes (pipe or pty master)
        self._subs: list[asyncio.Queue[Chunk]] = []
        self.done = False
        self.attached_once = False

    @classmethod
    def open(cls, *, tty: bool, stdin: bool) -> ContainerIO:
        io = cls(tty, stdin)
        err_r, err_w = os.pipe()
        io.err_r = err_r
        if tty:
            master, slave = pty.openpty()
            io.out_r, io._in_w = master, os.dup(master)
            io.child = [slave, slave, slave]
            os.close(err_w)  # stderr is the terminal too: this pipe just ends
        else:
            out_r, out_w = os.pipe()
            io.out_r = out_r
            if stdin:
                in_r, in_w = os.pipe()
                io._in_w = in_w
            else:
                in_r = os.open(os.devnull, os.O_RDONLY)
            io.child = [in_r, out_w, err_w]
        if io._in_w >= 0:
            os.set_blocking(io._in_w, False)
        return io

    def preexec(self) -> None:
        _child_setup(self.tty)

    def after_spawn(self) -> None:
        """Close our copies of the child's ends, so EOF propagates."""
        for fd in set(self.child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.child = []

    def abort(self) -> None:
        self.after_spawn()
        for fd in (self.out_r, self.err_r, self._in_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._in_w = -1

    async def reader(self, fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        transport, _ = await loop.connect_read_pipe(lambda: _EIOasEOF(reader), os.fdopen(fd, "rb", 0))
        return reader, transport

    # -- sessions -------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[Chunk]:
        q: asyncio.Queue[Chunk] = asyncio.Queue()
        if self.done:
            q.put_nowait(None)
        self._subs.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Chunk]) -> None:
        with contextlib.suppress(ValueError):
            self._subs.remove(q)

    def publish(self, stream: str, data: bytes) -> None:
        for q in self._subs:
            q.put_nowait((stream, data))

    def finish(self) -> None:
        self.done = True
        for q in self._subs:
            q.put_nowait(None)
        self.close_stdin()

    async def write_stdin(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._in_w >= 0:
            try:
                n = os.write(self._in_w, view)
                view = view[n:]
            except BlockingIOError:
                await asyncio.sleep(0.005)  # the process is not reading yet
            except OSError:
                return  # the process closed its stdin

    def close_stdin(self) -> None:
        if self._in_w >= 0:
            with contextlib.suppress(OSError):
                if self.tty and not self.done:
                    os.write(self._in_w, b"\x04")  # ^D: end of input on a terminal
                else:
                    os.close(self._in_w)
            if not self.tty or self.done:
                self._in_w = -1

    def resize(self, width: int, height: int) -> None:
        if self.tty and self.out_r >= 0 and width > 0 and height > 0:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.out_r, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class ExecProcess:
    """A command started by `kubectl exec`; `io` carries its streams."""

    def __init__(self, proc: asyncio.subprocess.Process, io: ContainerIO) -> None:
        self.proc = proc
        self.io = io
        self.pumps: asyncio.Future[list[None]] | None = None
        self.output: asyncio.Queue[Chunk] | None = None

    async def wait(self) -> int:
        rc = await self.proc.wait()
        if self.pumps is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.pumps), 2.0)
            except Exception:  # noqa: BLE001 -- a descendant kept the pipe open
                self.pumps.cancel()
        self.io.finish()
        return rc if rc >= 0 else 128 - rc

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)


async def spawn_exec(argv: list[str], exe: str, cwd: str, env: dict[str, str], *, tty: bool,
                     stdin: bool) -> ExecProcess:
    io = ContainerIO.open(tty=tty, stdin=stdin)
    if tty:
        env = {"TERM": "xterm", **env}
    try:
        proc = await asyncio.create_subprocess_exec(
            argv[0], *argv[1:], executable=exe, cwd=cwd, env=env, stdin=io.child[0], stdout=io.child[1],
            stderr=io.child[2], start_new_session=True, preexec_fn=io.preexec)
    except OSError:
        io.abort()
        raise
    io.after_spawn()
    ep = ExecProcess(proc, io)
    ep.output = io.subscribe()  # before any output can be published

    async def pump(fd: int, name: str) -> None:
        reader, transport = await io.reader(fd)
        try:
            while chunk := await reader.read(65536):
                io.publish(name, chunk)
        finally:
            transport.close()

    ep.pumps = asyncio.gather(pump(io.out_r, "stdout"), pump(io.err_r, "stderr"))
    return ep
