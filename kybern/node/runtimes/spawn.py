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
  the exec, and the "parent" it refers to is the thread that spawned it: the
  spawn worker's (below) or the agent's event-loop thread, each as long-lived
  as the agent. setpriv looks ARGV0 up as execvp does (on
  the container's PATH, or relative to its working dir), so this path is taken
  only when that finds the executable the runtime resolved: the program then
  gets its argv[0] unchanged (error messages, `ps`). An executable that the
  runtime found inside the container's copy of the image (execvp would find
  the host's, or none) keeps the fork path;
- the network namespace is per thread on Linux and inherited by a child: the
  calling thread enters the pod's netns for the (synchronous) spawn and
  returns to its own right after, with nothing else running on it in between;
- the cgroup: the pid is moved right after the spawn (the runtime did that
  already as a second chance), normally while setpriv is still starting;
  should the program have forked already, the children it has by then are
  moved too (`descendant_pids`);
- the exit status: a pidfd watched by the parent's loop, so there is no waiter
  thread per process (asyncio's default child watcher in Python 3.11 starts one);
- not on the event loop's thread: vfork() suspends the calling thread until
  the child has exec'd (1-3 ms here), so the loop would wait that long per
  start. A thread does not help: a long-lived "spawner" thread did it for a
  while, but every system call either thread made then handed the GIL over and
  back (~40 % of the agent's samples in a burst were futex waits and wake-ups,
  and more CPU per pod than with the spawn inline). So the runtime hands the
  start to a small worker process, spawnd.py (a containerd shim's job, in
  miniature), which also moves the pid into its cgroup and reads its start
  time; the event loop sends a request with the three stdio fds and goes on
  with other pods. The worker is the children's parent (PDEATHSIG refers to
  it, and it dies with the agent's event-loop thread), reaps them and reports
  their exit codes. Should it be gone or the request too big, the spawn runs
  on the event loop's own thread, as before the worker (`WorkerGone`).

Exec probes and exec lifecycle hooks (`exec_sync`) start the same way: with
many pods, a fork of the agent per probe period was a steady cost.

Containers with a TTY (the child must take the terminal with TIOCSCTTY), and
machines without setpriv or pidfds, keep the fork + preexec_fn path.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import orjson

from kybern.node.runtimes import spawnd
from kybern.node.runtimes.proctree import from_ticks, kill_group, kill_tree

log = logging.getLogger(__name__)

SETPRIV = spawnd.SETPRIV
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


def _execvp_finds(argv0: str, exe: str, cwd: str, env: dict[str, str]) -> bool:
    """Would execvp(argv0) in the child (working dir `cwd`, PATH from `env`) run `exe`?"""
    if "/" in argv0:
        found: str | None = os.path.join(cwd, argv0)
    else:
        found = shutil.which(argv0, path=env.get("PATH", os.defpath))
    return found is not None and os.path.normpath(found) == os.path.normpath(exe)


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


class RemoteChild:
    """A process the spawn worker started: `pid`, `returncode`, `wait()`, as
    Child; `start_time` (psutil's create_time) as the worker read it. The worker
    is its parent and reaps it; the exit code arrives as a notice."""

    in_cgroup = True  # the worker moved it there before answering

    def __init__(self, pid: int, start_time: float) -> None:
        self.pid = pid
        self.start_time = start_time
        self.returncode: int | None = None
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def exited(self, code: int) -> None:
        self.returncode = code
        if not self._exited.done():
            self._exited.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


class WorkerGone(Exception):
    """The spawn worker could not take the request (not running, died, or the
    request was too big): spawn in this process instead."""


class SpawnWorker:
    """The agent's side of spawnd.py: started with the runtime (and again on
    the next spawn after it died), answers matched by id, all on the
    event loop (a reader callback, no thread)."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._proc: Child | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[RemoteChild]] = {}
        self._children: dict[int, RemoteChild] = {}  # by pid, until the worker reports its exit

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the worker now (the agent's start-up), not with the first container."""
        if _FAST and self._sock is None:
            try:
                self._start()
            except OSError as e:
                log.warning("no spawn worker (containers start from the agent's event loop): %s", e)

    def _start(self) -> socket.socket:
        from_ticks(1)  # boot time read once now, not during the first burst
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            popen = subprocess.Popen(
                [SETPRIV or "setpriv", "--pdeathsig", "TERM", "--", sys.executable, "-I", "-S", spawnd.__file__,
                 str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._proc = Child(popen)
        self._sock = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._read)
        return ours

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            msg = orjson.loads(data)
            if "exit" in msg:  # always after the answer for that pid: one socket, in order
                child = self._children.pop(msg["exit"], None)
                if child is not None:
                    child.exited(msg["code"])
                continue
            fut = self._pending.pop(msg["id"], None)
            if "pid" in msg:
                if fut is None or fut.done():  # its caller was cancelled: it must not run unsupervised
                    kill_group(msg["pid"], signal.SIGKILL)
                    continue
                child = self._children[msg["pid"]] = RemoteChild(msg["pid"], from_ticks(msg["ticks"]))
                fut.set_result(child)
            elif fut is not None and not fut.done():
                fut.set_exception(WorkerGone(msg["strerror"]) if msg["errno"] == errno.EMSGSIZE
                                  else OSError(msg["errno"], msg["strerror"]))

    def _lost(self) -> None:
        """The worker is gone: what it started is killed now (a worker that
        could, did so itself; one that was SIGKILLed could not)."""
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        self._proc = None
        log.warning("the spawn worker exited; %d container processes it started were killed with it",
                    len(self._children))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(WorkerGone("the spawn worker exited"))
        self._pending.clear()
        for child in self._children.values():
            kill_tree(child.pid, child.start_time, signal.SIGKILL)
            child.exited(-9)
        self._children.clear()

    async def spawn(self, argv: list[str], exe: str, *, cwd: str, env: dict[str, str], stdio: list[int],
                    namespaces: dict[str, str], cgroup_procs: list[str],
                    identity: dict[str, Any] | None = None) -> RemoteChild:
        """Start the process in the worker; raises OSError as execve() would,
        WorkerGone when the agent should start it itself."""
        try:
            sock = self._sock or self._start()
        except OSError as e:
            raise WorkerGone(str(e)) from e
        rid = next(self._ids)
        body = orjson.dumps({"id": rid, "argv": argv, "exe": exe, "cwd": cwd, "env": env, "namespaces": namespaces,
                             "cgroup_procs": cgroup_procs, **({"identity": identity} if identity else {})})
        if len(body) > spawnd.MAX_MESSAGE:
            raise WorkerGone("request too big")
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            socket.send_fds(sock, [body], stdio[:3])
        except OSError as e:  # EMSGSIZE, a full buffer (EAGAIN), the worker gone
            self._pending.pop(rid, None)
            raise WorkerGone(str(e)) from e
        return await fut

    async def close(self) -> None:
        """Stop the worker (after the containers are stopped: those still
        running die with it)."""
        sock, proc = self._sock, self._proc
        if sock is None or proc is None:
            return
        asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()  # end of file: the worker returns
        self._sock = self._proc = None
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            os.kill(proc.pid, 9)


async def spawn(argv: list[str], exe: str, *, cwd: str, env: dict[str, str], stdio: list[int],
                namespaces: dict[str, str], tty: bool, preexec: Callable[[], None],
                execvp_finds: bool | None = None,
                worker: SpawnWorker | None = None, cgroup_procs: list[str] | None = None,
                identity: dict[str, Any] | None = None) -> Any:
    """Start `exe` with `argv` in a new session, stdio on the given fds, in the
    pod's `namespaces` ({"net": path, "uts": path}; one not given: the agent's) and
    tied to the agent with PDEATHSIG.
    `preexec` must do the same child-side steps (the fallback path runs it).
    With a `worker`, the fast path runs there and returns a `RemoteChild`,
    already moved into the cgroup whose `cgroup_procs` files are given;
    without one (or when it cannot take the request) it runs here and returns
    a `Child` with no await in between, so the caller's next statement runs
    right after the vfork (the cgroup move, see above).
    Returns an object with `pid`, `returncode` and `async wait()`; raises
    OSError as execve() would. `execvp_finds`: whether execvp(argv[0]) finds `exe`,
    if the caller knows (looked up when None). `identity`: the user, group and
    supplementary groups to run as (Popen's `user`, `group`, `extra_groups`)."""
    if _FAST and not tty and worker is not None:
        try:
            return await worker.spawn(argv, exe, cwd=cwd, env=env, stdio=stdio, namespaces=namespaces,
                                      cgroup_procs=cgroup_procs or [], identity=identity)
        except WorkerGone as e:
            log.info("spawning %s in the agent: %s", argv[0], e)
    if execvp_finds is None:
        execvp_finds = _execvp_finds(argv[0], exe, cwd, env)
    if _FAST and not tty and execvp_finds:
        return Child(spawnd.start(argv, exe, cwd=cwd, env=env, stdio=stdio, namespaces=namespaces,
                                  die_with_caller=True, identity=identity))
    if identity:  # after the preexec's namespace and cgroup steps, which need root (Popen's own come before)
        preexec = _then_become(preexec, identity)
    proc = await asyncio.create_subprocess_exec(
        argv[0], *argv[1:], executable=exe, cwd=cwd, env=env, stdin=stdio[0], stdout=stdio[1],
        stderr=stdio[2], start_new_session=True, preexec_fn=preexec)
    return proc


def _then_become(preexec: Callable[[], None], identity: dict[str, Any]) -> Callable[[], None]:
    def run() -> None:
        preexec()
        os.setgroups(identity.get("extra_groups") or [])
        if identity.get("group") is not None:
            os.setregid(identity["group"], identity["group"])
        if identity.get("user") is not None:
            os.setreuid(identity["user"], identity["user"])
    return run
