"""The `linux` runtime: containers through an OCI runtime (crun), each in its
image's root filesystem with its own PID, IPC and mount namespaces.

It is the process runtime (process.py) with three things changed, so sandboxes
(the pod's network and UTS namespaces), logs, cgroups, probes and exit handling
are that runtime's:

- the container's root is an overlayfs (lowerdir: the image's directory in the
  store, never written; upperdir/workdir: per container) instead of a copy,
  mounted in the agent's template mount namespace (mountns.py), where crun runs;
- the started command is `crun run --bundle <container dir> <id>` in the
  foreground with a generated config.json (`oci_spec`): crun's stdio are the
  container's, and it exits with the container's exit code. crun is started
  the way the process runtime starts a program: inside the pod's network and
  UTS namespaces (the spec lists neither, so the container inherits them: one
  place joins them, sandbox.py) and inside the container's cgroup (crun runs
  with --cgroup-manager=disabled: the cgroup, its limits and its OOM counter
  stay cgroups.py's);
- stop is `crun kill <id> TERM`, then KILL after the grace period; exec and
  exec probes are `crun exec <id> ...`; leftovers of an agent that is gone
  (`crun list` under our --root) are killed and deleted at start.

Root only (`kybern up|agent --runtime linux` refuse otherwise: `problem()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import posixpath
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from kybern.node.runtimes import mountns
from kybern.node.runtimes.base import (
    CREATED,
    RUNNING,
    ContainerConfig,
    ContainerError,
    ContainerStatus,
    Mount,
    PodSandboxConfig,
)
from kybern.node.runtimes.process import ProcessRuntime, _Container, container_argv, container_env
from kybern.node.runtimes.records import write_record
from kybern.node.runtimes.stdio import ExecProcess, spawn_exec

log = logging.getLogger(__name__)

# containerd's defaults (oci/spec.go, oci/mounts.go): what a container gets unless the pod asks otherwise
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE"]
MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/sys/devices/virtual/powercap", "/proc/scsi"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
_SYSTEM_MOUNTS: list[dict[str, Any]] = [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755",
                                                                         "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
]


_UNIFIED = "/sys/fs/cgroup/unified"
_SH = shutil.which("sh") or "/bin/sh"
# the shell writes "0" (itself) into each cgroup.procs file given before "--", then execs the rest
_ENTER_CGROUPS = 'while [ "$1" != -- ]; do echo 0 > "$1"; shift; done; shift; exec "$@"'


def _hybrid_v2_in_use() -> bool:
    try:
        with open(f"{_UNIFIED}/cgroup.controllers") as f:
            return bool(f.read().strip())
    except OSError:
        return False


def _host_path(root: str, path: str, mounts: list[Mount]) -> str:
    """Where the container's absolute `path` is on the host: under the volume mounted over
    it (the deepest), else under `root`."""
    for m in sorted(mounts, key=lambda m: -len(m.container_path)):
        cp = m.container_path.rstrip("/")
        if path == cp or path.startswith(cp + "/"):
            return m.host_path + path[len(cp):]
    return root + path


def _lookup(root: str, path: str, mounts: list[Mount], hops: int = 0) -> str:
    """The host path of the container's `path`, its symlinks followed inside the container
    (an absolute target is the container's, not the host's)."""
    parts = [p for p in path.split("/") if p]
    cur = ""
    for i, part in enumerate(parts):
        nxt = f"{cur}/{part}"
        host = _host_path(root, nxt, mounts)
        if hops < 40 and os.path.islink(host):
            target = os.readlink(host)
            base = target if target.startswith("/") else posixpath.join(cur or "/", target)
            return _lookup(root, posixpath.normpath(posixpath.join(base, *parts[i + 1:])), mounts, hops + 1)
        cur = nxt
    return _host_path(root, cur or "/", mounts)


def find_executable(argv0: str, root: str, cwd: str, path_env: str, mounts: list[Mount]) -> bool:
    """Whether the container would find `argv0` (as runc's LookPath: on its PATH, or a path
    relative to its working dir), looking at its files from the host."""
    if "/" in argv0:
        candidates = [posixpath.join(cwd, argv0)]
    else:
        candidates = [posixpath.join(d if d.startswith("/") else posixpath.join(cwd, d), argv0)
                      for d in path_env.split(":") if d]
    for cand in candidates:
        host = _lookup(root, posixpath.normpath(cand), mounts)
        if os.path.isfile(host) and os.access(host, os.X_OK):
            return True
    return False


def not_found(argv0: str) -> str:
    """The message of a command that is not there, as the process runtime (and runc) word it."""
    if "/" in argv0:
        return f'exec: "{argv0}": stat {argv0}: no such file or directory'
    return f'exec: "{argv0}": executable file not found in $PATH'


def crun() -> str | None:
    return shutil.which("crun")


def problem() -> str | None:
    """Why `--runtime linux` cannot run here, or None."""
    if os.geteuid() != 0:
        return "--runtime linux needs root (namespaces, overlay mounts, cgroups); run as root or use --runtime process"
    if crun() is None:
        return "--runtime linux needs crun (an OCI runtime) on PATH: apt-get install crun"
    return None


def oci_process(config: ContainerConfig, argv: list[str], env: dict[str, str], cwd: str, *,
                tty: bool = False) -> dict[str, Any]:
    """The spec's `process`: of the container, and of each exec in it (`crun exec --process`)."""
    user: dict[str, Any] = {"uid": config.run_as_user or 0, "gid": config.run_as_group or 0}
    if config.supplemental_groups:
        user["additionalGids"] = list(config.supplemental_groups)
    return {
        "terminal": False,  # a TTY gets the agent's pty as its stdio (stdio.py)
        "user": user, "args": argv, "cwd": cwd,
        "env": [f"{k}={v}" for k, v in ({"TERM": "xterm"} if tty else {}).items()] +
               [f"{k}={v}" for k, v in env.items()],
        # as containerd, whatever the user: a non-root program loses them at its exec (no ambient set)
        "capabilities": {k: DEFAULT_CAPABILITIES for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": False,
    }


def oci_spec(config: ContainerConfig, argv: list[str], env: dict[str, str], cwd: str, rootfs: str,
             hostname_file: str) -> dict[str, Any]:
    """The OCI runtime spec (config.json) of a container. No network or UTS namespace:
    crun starts in the pod's and the container inherits them."""
    mounts = [dict(m) for m in _SYSTEM_MOUNTS]
    mounts.append({"destination": "/etc/hostname", "type": "bind", "source": hostname_file,
                   "options": ["rbind", "rprivate", "rw"]})
    # parents before children, as containerd sorts them (a volume inside another one)
    for m in sorted(config.mounts, key=lambda m: len(Path(m.container_path).parts)):
        mounts.append({"destination": m.container_path, "type": "bind", "source": m.host_path,
                       "options": ["rbind", "rprivate", "ro" if m.readonly else "rw"]})
    return {
        "ociVersion": "1.0.2",
        "process": oci_process(config, argv, env, cwd, tty=config.tty),
        "root": {"path": rootfs, "readonly": False},
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "mount"}],
            "maskedPaths": MASKED_PATHS, "readonlyPaths": READONLY_PATHS,
            "rootfsPropagation": "rprivate",
        },
    }


class LinuxRuntime(ProcessRuntime):
    name = "linux"
    version = "0.1.0"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crun = crun() or "crun"
        self.crun_root = str((self.root / "crun").resolve())

    def _crun(self, *args: str) -> list[str]:
        # cgroups are ours (cgroups.py): crun runs inside the container's and makes none
        return [self.crun, "--root", self.crun_root, "--cgroup-manager=disabled", *args]

    async def _crun_run(self, *args: str, timeout: float = 10) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(*self._in_template(self._crun(*args)), stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return -1, "timed out"
        return proc.returncode or 0, out.decode(errors="replace")

    @staticmethod
    def _in_template(argv: list[str]) -> list[str]:
        return ["nsenter", f"--mount={mountns.template_path()}", "--", *argv]

    def _namespaces(self, c: _Container) -> dict[str, str]:
        # crun always runs in the template mount namespace: the overlay roots and in-memory
        # volumes are mounted there, and the cgroup v2 half of a hybrid layout is hidden
        return {**super()._namespaces(c), "mnt": mountns.template_path()}

    async def start(self) -> None:
        os.makedirs(self.crun_root, exist_ok=True)
        if not self.mount_namespaces:
            raise RuntimeError("the linux runtime needs mount namespaces (root; KYBERN_MOUNT_NAMESPACES not 0)")
        await super().start()  # records of running containers: their processes and cgroups are killed
        if _hybrid_v2_in_use():
            # crun refuses a hybrid layout whose cgroup2 half has controllers, even with
            # --cgroup-manager=disabled; it then sees plain cgroup v1 (its cgroups are ours anyway)
            await asyncio.to_thread(mountns.mount_tmpfs, _UNIFIED, 4096)
        # what an agent that is gone left in crun's state: killed and deleted, as the process runtime reaps
        rc, out = await self._crun_run("list", "-q")
        for cid in out.split() if rc == 0 else []:
            await self._crun_run("delete", "-f", cid)

    # -- containers ---------------------------------------------------------
    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox_config: PodSandboxConfig) -> str:
        if self.sandboxes.status(sandbox_id) is None:
            raise ContainerError("CreateContainerError", f"pod sandbox {sandbox_id} not found")
        img = self.images.get(config.image)
        if img is None:
            raise ContainerError("CreateContainerError", f'image "{config.image}" not found')
        icfg = img.config
        argv = container_argv(config, icfg)
        env = container_env(config, icfg, sandbox_config, DEFAULT_PATH, {"HOME": "/"})
        cwd = config.working_dir or icfg.get("workingDir") or "/"
        cid = os.urandom(32).hex()
        cdir = self.root / "containers" / cid
        rootfs = str(cdir / "rootfs")
        try:
            for d in ("rootfs", "upper", "work"):
                (cdir / d).mkdir(parents=True)
            hostname = cdir / "hostname"
            # the pod's hostname (its UTS namespace's), or the node's for a hostNetwork pod
            name = socket.gethostname() if sandbox_config.host_network else (
                sandbox_config.hostname or sandbox_config.name)[:63].rstrip("-.")
            hostname.write_text(name + "\n")
            spec = oci_spec(config, argv, env, cwd, rootfs, str(hostname))
            (cdir / "config.json").write_text(json.dumps(spec))
            await asyncio.to_thread(mountns.mount_overlay, str(img.rootfs), str(cdir / "upper"),
                                    str(cdir / "work"), rootfs)
        except OSError as e:
            await asyncio.to_thread(shutil.rmtree, cdir, True)
            raise ContainerError("CreateContainerError", f"failed to create the container's root: {e}") from e
        log_path = os.path.join(sandbox_config.log_directory, config.log_path) if config.log_path else str(
            cdir / "container.log")
        status = ContainerStatus(id=cid, sandbox_id=sandbox_id, name=config.name, attempt=config.attempt,
                                 state=CREATED, image=img.ref, image_ref=img.repo_digest,
                                 created_at=time.time(), log_path=log_path, labels=dict(config.labels))
        c = _Container(status, config, cdir, cwd, argv, env)
        try:
            if self.cgroups.enabled and sandbox_config.cgroup_parent:
                c.cgroup = self._container_cgroup(sandbox_config, cid, config.resources)
        except OSError as e:
            await self._remove_root(c)
            raise ContainerError("CreateContainerError", f"failed to create the container's cgroup: {e}") from e
        self._keep(c)
        return cid

    def _in_cgroup(self, c: _Container, argv: list[str]) -> list[str]:
        """`argv` started from inside the container's cgroup: crun forks the container's process
        at once, so moving crun after the spawn (spawnd.py) could leave that process outside."""
        paths = self.cgroups.joiner(c.cgroup, None).paths
        return [_SH, "-c", _ENTER_CGROUPS, "sh", *paths, "--", *argv] if paths else argv

    def _start_target(self, c: _Container) -> tuple[list[str], str, str, bool, Any, dict[str, str]]:
        # checked before crun runs, so a missing command is a StartError as with runc (crun would
        # only say so in the container's log and exit 127); a fresh container's files are its image's
        img = self.images.get(c.config.image)
        if img is not None and not find_executable(c.argv[0], str(img.rootfs), c.cwd, c.env.get("PATH", ""),
                                                   c.config.mounts):
            raise ContainerError("StartError", not_found(c.argv[0]))
        argv = self._in_cgroup(c, self._crun("run", "--bundle", str(c.dir), c.status.id))
        return argv, argv[0], str(c.dir), True, None, self._namespaces(c)

    def _exec_argv(self, c: _Container, cmd: list[str], *, tty: bool = False) -> list[str]:
        """`crun exec` of `cmd` as the container's process: its user and groups, env, working
        dir, capabilities. The process file is written once per command (probes repeat theirs)."""
        path = c.dir / "exec" / (hashlib.sha256(json.dumps([tty, cmd]).encode()).hexdigest()[:32] + ".json")
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            write_record(path, oci_process(c.config, cmd, c.env, c.cwd, tty=tty))
        return self._in_cgroup(c, self._crun("exec", "--process", str(path), c.status.id))

    def _found(self, c: _Container, argv0: str) -> bool:
        """Whether `argv0` is there now: seen through the container's init process's root."""
        pid = c.status.pid  # crun's; the container's init is its child (not a scan of all processes)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
        except OSError:
            kids = []
        if not kids:
            return True  # starting or exiting: crun says what it finds
        return find_executable(argv0, f"/proc/{kids[0]}/root", c.cwd, c.env.get("PATH", ""), [])

    def _exec_target(self, c: _Container, cmd: list[str]) -> tuple[list[str], str, str, bool, Any] | None:
        if not self._found(c, cmd[0]):
            return None
        argv = self._exec_argv(c, cmd)
        return argv, argv[0], str(c.dir), True, None

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool, stdin: bool) -> ExecProcess:
        c = self._get(container_id)
        if c.status.state != RUNNING or not cmd:
            raise ContainerError("NotRunning" if cmd else "ExecError", f"container {container_id} is not running")
        if not self._found(c, cmd[0]):
            raise ContainerError("ExecError", not_found(cmd[0]))
        argv = self._exec_argv(c, cmd, tty=tty)  # a TTY session gets the agent's pty as its stdio (stdio.py)
        # the pod's network and hostname (the spec leaves them to crun's), the template mounts
        argv = ["nsenter", *(f"--{'mount' if kind == 'mnt' else kind}={path}"
                             for kind, path in self._namespaces(c).items()), "--", *argv]
        ep = await spawn_exec(argv, shutil.which(argv[0]) or argv[0], str(c.dir), {"PATH": DEFAULT_PATH},
                              tty=tty, stdin=stdin)
        return ep

    async def stop_container(self, container_id: str, timeout: float) -> None:
        c = self._containers.get(container_id)
        if c is None or c.status.state != RUNNING:
            return
        if timeout > 0:
            await self._crun_run("kill", container_id, "TERM")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(c.exited.wait(), timeout)
        if not c.exited.is_set():
            await self._crun_run("kill", container_id, "KILL")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(c.exited.wait(), 2)
        await super().stop_container(container_id, 0)  # crun itself, if it is still there

    async def remove_container(self, container_id: str) -> None:
        c = self._containers.get(container_id)
        if c is None:
            return
        if c.status.state == RUNNING:
            await self.stop_container(container_id, 0)
        await self._crun_run("delete", "-f", container_id)
        await asyncio.to_thread(mountns.unmount, str(c.dir / "rootfs"))
        await super().remove_container(container_id)

    async def _remove_root(self, c: _Container) -> None:
        await asyncio.to_thread(mountns.unmount, str(c.dir / "rootfs"))
        await asyncio.to_thread(shutil.rmtree, c.dir, True)
