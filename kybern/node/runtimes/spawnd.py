"""The process runtime's spawn worker: a small process that starts container
processes (and exec probes) for the node agent, as a containerd shim does
for the kubelet's runtime.

Why a process: starting a program by vfork() suspends the calling thread
until the child has exec'd (1-3 ms on this kind of machine), and on the agent's
event loop that is 1-3 ms per container in which no watch event, status write
or other pod is handled. A thread does not help: every system call either
thread makes hands the GIL over and back (docs/benchmarks.md, issue 4). Here
the vfork, the move into the cgroup and the start-time read run beside the
event loop, on the other core.

Protocol, over a SOCK_SEQPACKET socket pair (one message per datagram, JSON):
- request  {"id": N, "argv": [...], "exe": "...", "cwd": "...", "env": {...},
           "namespaces": {"net"|"uts"|"mnt": path}, "cgroup_procs": [paths]} with the child's
           stdin, stdout and stderr as three file descriptors (SCM_RIGHTS);
- reply    {"id": N, "pid": P, "ticks": T}  (T: the start time in clock ticks
           since boot, /proc/<pid>/stat field 22, as psutil's create_time reads it)
           or {"id": N, "errno": E, "strerror": "..."} as execve() would fail;
- notice   {"exit": P, "code": C} when a child exits (this process is its
           parent, so it reaps it; C as os.waitstatus_to_exitcode gives it).
End of file on the socket (the agent is gone or closed it): the worker exits.

It is started as `setpriv --pdeathsig TERM -- python -I -S spawnd.py FD`: when
the agent's event-loop thread ends (the agent exits or is killed), or the
socket reaches end of file, the worker SIGKILLs the process group of every
child it still has, then exits. So its children need no PDEATHSIG of their
own, and are exec'd directly rather than through setpriv (one exec less per
container, ~1 ms of CPU on this kind of machine). If the worker itself is
killed, the agent sees end of file and kills them (spawn.py). Standard library
only, and no site packages (-S), so it costs ~11 MB, not a second agent's worth.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

SETPRIV = shutil.which("setpriv")
MAX_MESSAGE = 1 << 20  # bigger requests (a huge environment) are spawned by the agent itself
NSTYPES = {"net": 0x40000000, "uts": 0x04000000, "mnt": 0x00020000}  # CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWNS
_libc: Any = None


def setns(fd: int, kind: str = "net") -> None:
    """Move the calling thread into the namespace (of `kind`, a key of NSTYPES)
    open as `fd`. (ctypes on demand: host-network pods never need it.)"""
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, NSTYPES[kind]) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def check_exec_format(exe: str) -> None:
    """What execve() would refuse, refused here (the child execs through
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


def start(argv: list[str], exe: str, *, cwd: str, env: dict[str, str], stdio: list[int],
          namespaces: dict[str, str], die_with_caller: bool,
          identity: dict[str, Any] | None = None) -> subprocess.Popen[bytes]:
    """Start `exe` as `argv` in a new session, stdio on the given fds, in the
    pod's `namespaces` ({"net": path, "uts": path, "mnt": path}; one not given: ours).
    vfork() underneath: no preexec_fn, so this thread enters them for the spawn
    (the child inherits them) and comes back right after.
    `die_with_caller`: exec through `setpriv --pdeathsig KILL`, so it gets
    SIGKILL when the calling thread ends (then execvp() of argv[0] by setpriv
    must find `exe`: spawn.py checks); that is one more exec, ~1 ms of CPU
    here. The worker does without: it kills its children itself (serve()).
    `identity`: {"user", "group", "extra_groups"} for Popen, the container's
    securityContext (Python then forks instead of vforking)."""
    if die_with_caller:
        check_exec_format(exe)
        assert SETPRIV is not None
        args, executable = [SETPRIV, "--pdeathsig", "KILL", "--", *argv], SETPRIV
    else:  # as runc's LookPath: a name with a slash is exec'd as given, so a script's $0 is that name
        relative = "/" in argv[0] and os.path.normpath(os.path.join(cwd, argv[0])) == os.path.normpath(exe)
        args, executable = argv, (argv[0] if relative else exe)
    entered: list[tuple[str, int, int]] = []  # (kind, the pod's fd, our own fd)
    # entering a mount namespace and coming back moves this thread to its root: keep our cwd
    cwd_fd = os.open(".", os.O_PATH | os.O_CLOEXEC) if namespaces.get("mnt") else -1
    try:
        for kind, path in namespaces.items():
            if path:
                entered.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC),
                                os.open(f"/proc/thread-self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)))
        for kind, theirs, _ in entered:
            setns(theirs, kind)
        try:
            return subprocess.Popen(args, executable=executable, cwd=cwd, env=env, stdin=stdio[0],
                                    stdout=stdio[1], stderr=stdio[2], start_new_session=True, **(identity or {}))
        finally:
            for kind, _, own in entered:
                setns(own, kind)  # back to our own before anything else runs here
            if cwd_fd >= 0:
                os.fchdir(cwd_fd)
    finally:
        for _, theirs, own in entered:
            os.close(theirs)
            os.close(own)
        if cwd_fd >= 0:
            os.close(cwd_fd)


def descendant_pids(pid: int) -> list[int]:
    """The descendants `pid` has at this moment, from /proc/<pid>/task/*/children
    (one small read per process)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def start_ticks(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    return int(data[data.rfind(b")") + 2:].split()[19])  # after "pid (comm) ": the state is field 3


def _to_stderr(msg: str) -> None:
    print(f"spawnd: {msg}", file=sys.stderr)


def move_into_cgroup(procs_files: list[str], pid: int, warn: Callable[[str], None] = _to_stderr) -> None:
    """Right after a vfork spawn (here, or the agent's own fast path): the
    process, and what it forked already, into the cgroup whose cgroup.procs
    files are given (one per v1 hierarchy)."""
    if not procs_files:
        return
    pids = [pid, *descendant_pids(pid)]
    for path in procs_files:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:  # made with the container; gone only if someone removed it
            warn(f"cannot enter cgroup {path}, the process runs outside it: {e}")
            continue
        try:
            for p in pids:
                try:
                    os.write(fd, str(p).encode())
                except OSError as e:
                    if e.errno != errno.ESRCH:
                        warn(f"cannot move pid {p} into {path}: {e}")
        finally:
            os.close(fd)


def serve(sock: socket.socket) -> None:
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, None)
    children: dict[int, subprocess.Popen[bytes]] = {}  # pidfd -> the child

    state = {"spawning": False, "dying": False}

    def agent_gone(*_: Any) -> None:
        """SIGTERM (our PDEATHSIG: the agent's event-loop thread ended) or end of
        file: what we started goes too, each child's whole process group, as a
        container's processes go with its PID namespace."""
        if state["spawning"]:
            state["dying"] = True
            return
        for p in children.values():
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, agent_gone)

    def send(msg: dict[str, Any]) -> None:
        sock.send(json.dumps(msg).encode())

    while True:
        for key, _ in sel.select():
            if key.data is None:
                try:
                    data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE, 3)
                except OSError:
                    data, fds = b"", []
                if not data:
                    agent_gone()
                try:
                    req = json.loads(data)
                    if flags & socket.MSG_TRUNC or len(fds) != 3:
                        send({"id": req.get("id") if isinstance(req, dict) else None,
                              "errno": errno.EMSGSIZE, "strerror": "request truncated"})
                        continue
                    # a SIGTERM now waits until the child is in `children` (not by blocking the
                    # signal: the child would inherit the mask, and ignore a SIGTERM all its life)
                    state["spawning"] = True
                    try:
                        p = start(req["argv"], req["exe"], cwd=req["cwd"], env=req["env"], stdio=fds,
                                  namespaces=req["namespaces"], die_with_caller=False,
                                  identity=req.get("identity"))
                        pidfd = os.pidfd_open(p.pid)
                        children[pidfd] = p
                    except OSError as e:
                        send({"id": req["id"], "errno": e.errno or errno.EIO, "strerror": e.strerror or str(e)})
                        continue
                    finally:
                        state["spawning"] = False
                        if state["dying"]:
                            agent_gone()
                    sel.register(pidfd, selectors.EVENT_READ, p)
                    move_into_cgroup(req["cgroup_procs"], p.pid)
                    send({"id": req["id"], "pid": p.pid, "ticks": start_ticks(p.pid)})
                finally:
                    for fd in fds:
                        os.close(fd)
            else:
                sel.unregister(key.fd)
                os.close(key.fd)
                p = children.pop(key.fd)
                _, status = os.waitpid(p.pid, 0)
                p.returncode = code = os.waitstatus_to_exitcode(status)
                send({"exit": p.pid, "code": code})


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(sock)
    except (BrokenPipeError, ConnectionResetError):
        os.kill(os.getpid(), signal.SIGTERM)  # the agent is gone: agent_gone() takes our children along


if __name__ == "__main__":
    main()
