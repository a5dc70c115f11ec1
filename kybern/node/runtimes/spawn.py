"""Starting a container's main process without forking the agent's Python.

Why: the child-side steps a container needs (die with the agent, the pod's
network namespace, the cgroup) used to run as a `preexec_fn`, and Python can
only run one by fork()ing the whole agent and running Python in the copy. For
an agent of a few hundred MB (the `kybern up` process holds the apiserver too)
that blocked the event loop for tens of milliseconds per container and cost as
much CPU again in the child: a burst of 200 pods started at ~15 pods/s.
Without a preexec_fn, subprocess uses vfork(): the parent waits only until
the child has exec'd, and no page table is copied.

So the fast path moves each step out of the child:
- PR_SET_PDEATHSIG: the child execs `setpriv --pdeathsig KILL -- ARGV0 ARGS...`
  (util-linux), which sets it and execvp()s the program; the setting survives
  the exec, and the "parent" it refers to is the agent's event-loop thread,
  which lives as long as the agent. setpriv looks ARGV0 up as execvp does (on
  the container's PATH, or relative to its working dir), so this path is taken
  only when that finds the executable the runtime resolved: the program then
  gets its argv[0] unchanged (error messages, `ps`). An executable that the
  runtime found inside the container's copy of the image (execvp would find
  the host's, or none) keeps the fork path;
- the network namespace is per thread on Linux and inherited by a child: the
  calling thread enters the pod's netns for the (synchronous) spawn and
  returns to its own right after, with nothing else running on it in between;
- the cgroup: the caller moves the pid right after the spawn (the runtime did
  that already as a second chance), normally while setpriv is still starting;
  should the program have forked already, the children it has by then are
  moved too (`descendant_pids`);
- the exit status: a pidfd watched by the event loop, so there is no waiter
  thread per process (asyncio's default child watcher in Python 3.11 starts one);
- on the event loop's own thread: vfork() suspends the calling thread until the
  child has exec'd (1-3 ms here), so the loop waits that long per start. A
  long-lived "spawner" thread did it for a while, but every system call either
  thread made then handed the GIL over and back: during a burst of pod starts
  ~40 % of the agent's samples (perf) were futex waits and wake-ups, and the
  agent used 6.8-7.6 ms of CPU per pod against 4.9-5.8 ms with the spawn inline
  (docs/benchmarks.md, issue 4). The loop thread lives as long as the agent, so
  it is also what PDEATHSIG refers to.

Exec probes and exec lifecycle hooks (`exec_sync`) start the same way: with
many pods, a fork of the agent per probe period was a steady cost.

Containers with a TTY (the child must take the terminal with TIOCSCTTY), and
machines without setpriv or pidfds, keep the fork + preexec_fn path.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

SETPRIV = shutil.which("setpriv")
_FAST = SETPRIV is not None and hasattr(os, "pidfd_open")


class Child:
    """A process started by the fast path: `pid`, `returncode` and `wait()`,
    as asyncio's Process. It is reaped as soon as it exits, whether or not
    anyone waits (no zombies if the waiter was cancelled)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.returncode: int | None = None
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        self._pidfd = os.pidfd_open(self.pid)
        self._loop = loop
        loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        try:
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped elsewhere: as asyncio reports it
            code = 255
        self.returncode = self._popen.returncode = code
        if not self._exited.done():
            self._exited.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


def _check_exec_format(exe: str) -> None:
    """What execve() would refuse, refused here (the fast path execs through
    setpriv, so its errors would otherwise show only as an exit code): a file
    that is neither ELF nor a script, and a script whose interpreter is missing."""
    try:
        with open(exe, "rb") as f:
            head = f.readline(256)
    except OSError as e:
        raise OSError(e.errno, e.strerror) from None
    if head.startswith(b"\x7fELF"):
        return
    if not head.startswith(b"#!"):
        raise OSError(errno.ENOEXEC, os.strerror(errno.ENOEXEC))
    interp = head[2:].strip().split(maxsplit=1)
    if not interp or not os.access(interp[0], os.X_OK):
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))


def _execvp_finds(argv0: str, exe: str, cwd: str, env: dict[str, str]) -> bool:
    """Would execvp(argv0) in the child (working dir `cwd`, PATH from `env`) run `exe`?"""
    if "/" in argv0:
        found: str | None = os.path.join(cwd, argv0)
    else:
        found = shutil.which(argv0, path=env.get("PATH", os.defpath))
    return found is not None and os.path.normpath(found) == os.path.normpath(exe)


def _setns(fd: int) -> None:
    from kybern.network.podnet import setns  # only pods with their own netns need it

    setns(fd)


def _spawn_fast(argv: list[str], exe: str, *, cwd: str, env: dict[str, str], stdio: list[int],
                netns: str) -> subprocess.Popen[bytes]:
    _check_exec_format(exe)
    assert SETPRIV is not None
    args = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]  # setpriv execvp()s argv[0]: see _execvp_finds
    ns_fd = own_fd = None
    if netns:
        ns_fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        own_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if ns_fd is not None:
            _setns(ns_fd)
        try:
            p = subprocess.Popen(args, executable=SETPRIV, cwd=cwd, env=env, stdin=stdio[0], stdout=stdio[1],
                                 stderr=stdio[2], start_new_session=True)
        finally:
            if own_fd is not None:
                _setns(own_fd)  # back to the agent's network before anything else runs here
    finally:
        for fd in (ns_fd, own_fd):
            if fd is not None:
                os.close(fd)
    return p


async def read_to_eof(fd: int) -> bytes:
    """All that is written to the pipe read end `fd` until its last writer
    closes it (takes ownership of `fd`)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                os.fdopen(fd, "rb", 0))
    try:
        return await reader.read()
    finally:
        transport.close()


async def spawn(argv: list[str], exe: str, *, cwd: str, env: dict[str, str], stdio: list[int],
                netns: str, tty: bool, preexec: Callable[[], None], execvp_finds: bool | None = None) -> Any:
    """Start `exe` with `argv` in a new session, stdio on the given fds, in the
    netns at `netns` ("" = the agent's) and tied to the agent with PDEATHSIG.
    `preexec` must do the same child-side steps (the fallback path runs it).
    The fast path returns a `Child` with no await in between, so the caller's
    next statement runs right after the vfork (the cgroup move, see above).
    Returns an object with `pid`, `returncode` and `async wait()`; raises
    OSError as execve() would. `execvp_finds`: whether execvp(argv[0]) finds `exe`,
    if the caller knows (looked up when None)."""
    if execvp_finds is None:
        execvp_finds = _execvp_finds(argv[0], exe, cwd, env)
    if _FAST and not tty and execvp_finds:
        return Child(_spawn_fast(argv, exe, cwd=cwd, env=env, stdio=stdio, netns=netns))
    proc = await asyncio.create_subprocess_exec(
        argv[0], *argv[1:], executable=exe, cwd=cwd, env=env, stdin=stdio[0], stdout=stdio[1],
        stderr=stdio[2], start_new_session=True, preexec_fn=preexec)
    return proc
