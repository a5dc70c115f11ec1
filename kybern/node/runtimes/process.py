"""The `process` runtime: containers are plain host processes. No root needed.

What a container gets:
- its own session and process group, so the whole tree is signalled together
  (SIGTERM, a grace period, then SIGKILL to the group and to any descendant that
  escaped it). When the main process exits, what is left of its group is killed,
  as a PID namespace would be;
- a private copy of the image's files as its working tree (images stay
  untouched; a restart starts again from a fresh copy). Absolute paths in the
  command that exist inside that copy resolve there; anything else is the host's;
- its volumes as symlinks inside that copy: the mount at `/etc/config` is
  `<rootfs>/etc/config` -> the volume's directory on the host, and the
  container is told where its root is: `$KYBERN_ROOTFS/etc/config` always works
  (and `etc/config`, relative to the default working dir `/`). As root it also
  gets a mount namespace of its own with each volume at its absolute path
  (mountns.py); without root a program's absolute `/etc/config` is the host's;
- an environment built only from the image config and the container config
  (plus HOSTNAME, and the host's PATH when the image sets none);
- its stdout/stderr written to a per-container CRI-format log file that outlives it.

Its network: the pod's network namespace when the node has a CNI pod network
and the pod is not hostNetwork (sandbox.py; the process, exec sessions and exec
probes enter it with setns), else the host's.

Resource limits: as root on a host with cgroups, each pod and container gets
a cgroup with its limits, joined before exec (cgroups.py); OOM kills show as
`OOMKilled`. Otherwise limits are not enforced (logged once at start).

What it does not get: isolation. Pods share the host's filesystem (as root, apart from
their mounts) and users. Containers do not outlive the runtime: `shutdown()` stops them, and each
one is tied to its parent with PR_SET_PDEATHSIG so a crashed agent takes them
along; `start()` reaps any leftovers recorded in the data dir.

State lives under `<data_dir>/runtime/` (one JSON file per sandbox and per
container, with pid and process start time so leftovers are found reliably even
if pids were reused).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from kybern.machinery import meta
from kybern.node.images import ImageStore, InvalidReference, parse_ref
from kybern.node.logs import LogWriter
from kybern.node.runtimes import mountns
from kybern.node.runtimes.base import (
    CREATED,
    EXITED,
    RUNNING,
    ContainerConfig,
    ContainerError,
    ContainerStatus,
    ImagePullError,
    ImageStatus,
    Mount,
    PodSandboxConfig,
    PodSandboxStatus,
    RuntimeState,
)
from kybern.node.runtimes.cgroups import Cgroups
from kybern.node.runtimes.proctree import descendants as _descendants
from kybern.node.runtimes.proctree import kill_group as _kill_group
from kybern.node.runtimes.proctree import kill_tree as _kill_tree
from kybern.node.runtimes.proctree import start_time
from kybern.node.runtimes.records import write_record
from kybern.node.runtimes.rootfs import FreshTree, make_tree
from kybern.node.runtimes.sandbox import Sandboxes
from kybern.node.runtimes.spawn import Child, RemoteChild, SpawnWorker, read_to_eof, spawn
from kybern.node.runtimes.spawnd import SETPRIV, move_into_cgroup
from kybern.node.runtimes.stdio import ContainerIO, ExecProcess, spawn_exec

if TYPE_CHECKING:
    from kybern.network.podnet import PodNetwork

log = logging.getLogger(__name__)

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1
# images up to this size are copied for a container on the event loop, bigger ones in a thread
INLINE_COPY_BYTES = 1 << 20


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# where every pod's token volume is mounted (admission_serviceaccount.py): made on the host
# (an empty directory, on /run's tmpfs), so its mount does not need a private root
SERVICE_ACCOUNT_DIR = meta.SERVICE_ACCOUNT_MOUNT_PATH


class _Container:
    def __init__(self, status: ContainerStatus, config: ContainerConfig, directory: Path,
                 cwd: str, argv: list[str], env: dict[str, str]) -> None:
        self.status = status
        self.config = config
        self.dir = directory
        self.cwd = cwd
        self.argv = argv
        self.env = env
        self.proc_create_time = 0.0
        self.cgroup = ""  # relative to the runtime's cgroup root; "" = none (cgroups.py)
        self.exited = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.io: ContainerIO | None = None  # the main process's streams, for attach
        self.fresh: FreshTree | None = None  # its tree as make_tree() left it, until it starts
        self.mntns_fd: int | None = None  # holds its mount namespace (mountns.py), as root

    def to_json(self) -> dict[str, Any]:
        # the dataclasses' own dicts, not dataclasses.asdict: that deep-copies every
        # field, and this is written at each state change of every container
        cfg = {**vars(self.config), "mounts": [vars(m) for m in self.config.mounts]}
        return {"status": vars(self.status), "config": cfg, "cwd": self.cwd,
                "argv": self.argv, "env": self.env, "proc_create_time": self.proc_create_time,
                "cgroup": self.cgroup}

    @classmethod
    def from_json(cls, d: dict[str, Any], directory: Path) -> _Container:
        cfg = d["config"]
        cfg["env"] = [tuple(kv) for kv in cfg.get("env", [])]
        cfg["mounts"] = [Mount(**m) for m in cfg.get("mounts", [])]
        c = cls(ContainerStatus(**d["status"]), ContainerConfig(**cfg), directory,
                d["cwd"], d["argv"], d["env"])
        c.proc_create_time = d.get("proc_create_time", 0.0)
        c.cgroup = d.get("cgroup", "")
        if c.status.state == EXITED:
            c.exited.set()
        return c


class ProcessRuntime(RuntimeState):
    name = "process"
    version = "0.1.0"

    def __init__(self, data_dir: str | os.PathLike[str], images: ImageStore, *,
                 host_ip: str = "127.0.0.1", network: PodNetwork | None = None, node_name: str = "") -> None:
        self.root = Path(data_dir) / "runtime"
        self.data_dir = str(Path(data_dir).resolve())  # a private root shows it as it is (mountns.py)
        self.images = images
        self.host_ip = host_ip
        self.sandboxes = Sandboxes(self.root, host_ip, network, own_uts=os.geteuid() == 0)
        self.cgroups = Cgroups.for_node(node_name, data_dir)
        self.spawner = SpawnWorker()  # starts container processes beside the event loop (spawnd.py)
        self.mount_namespaces = mountns.supported()
        super().__init__()

    # -- lifecycle ----------------------------------------------------------
    async def start(self) -> None:
        self.sandboxes.load()
        (self.root / "containers").mkdir(parents=True, exist_ok=True)
        for d in (self.root / "containers").iterdir():
            try:
                c = _Container.from_json(json.loads((d / "state.json").read_text()), d)
            except (OSError, ValueError, TypeError, KeyError):
                log.warning("removing unreadable container record %s", d)
                shutil.rmtree(d, ignore_errors=True)
                continue
            self._keep(c)
            if c.status.state == RUNNING:
                self._reap_leftover(c)
        self.cgroups.log_once()
        if self.mount_namespaces:
            try:
                await asyncio.to_thread(mountns.prepare, SERVICE_ACCOUNT_DIR)
            except OSError as e:
                log.warning("no mount namespace per container (volumes only at relative paths): %s", e)
                self.mount_namespaces = False
        self.spawner.start()
        known = {s.uid for s in self.sandboxes.list()}
        for uid in self.cgroups.pod_uids() - known:  # pods gone while no agent ran
            await asyncio.to_thread(self.cgroups.remove, self.cgroups.find_pod(uid))
        await self.sandboxes.restore_networks()

    async def shutdown(self, timeout: float) -> None:
        running = [c for c in self._containers.values() if c.status.state == RUNNING]
        await asyncio.gather(*(self.stop_container(c.status.id, timeout) for c in running),
                             return_exceptions=True)
        await self.spawner.close()
        await asyncio.to_thread(self.cgroups.remove_all)  # recreated on demand by the next agent
        await self.sandboxes.teardown_networks()

    # -- sandboxes ----------------------------------------------------------
    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        try:
            if self.cgroups.enabled and config.cgroup_parent:
                self.cgroups.ensure_pod(config.cgroup_parent, config.resources)
        except OSError as e:
            raise ContainerError("CreatePodSandboxError",
                                 f"Failed to create pod sandbox: failed to create the pod's cgroup: {e}") from e
        try:
            return await self.sandboxes.run(config)
        except Exception as e:
            raise ContainerError("CreatePodSandboxError",
                                 f"Failed to create pod sandbox: failed to set up pod network: {e}") from e

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        for c in list(self._containers.values()):
            if c.status.sandbox_id == sandbox_id:
                await self.stop_container(c.status.id, 0)
        await self.sandboxes.stop(sandbox_id)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        for c in list(self._containers.values()):
            if c.status.sandbox_id == sandbox_id:
                await self.remove_container(c.status.id)
        await self.sandboxes.stop(sandbox_id)  # idempotent: the network is surely gone
        st = self.sandboxes.status(sandbox_id)
        if st is not None and self.cgroups.enabled:
            await asyncio.to_thread(self.cgroups.remove, self.cgroups.find_pod(st.uid))
        self.sandboxes.remove(sandbox_id)

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus | None:
        return self.sandboxes.status(sandbox_id)

    async def list_pod_sandboxes(self) -> list[PodSandboxStatus]:
        return self.sandboxes.list()

    # -- containers ---------------------------------------------------------
    def _image_for(self, sandbox_id: str, config: ContainerConfig) -> Any:
        """The image a new container of a live sandbox starts from (CreateContainerError otherwise)."""
        if self.sandboxes.status(sandbox_id) is None:
            raise ContainerError("CreateContainerError", f"pod sandbox {sandbox_id} not found")
        img = self.images.get(config.image)
        if img is None:
            raise ContainerError("CreateContainerError", f'image "{config.image}" not found')
        return img

    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox_config: PodSandboxConfig) -> str:
        img = self._image_for(sandbox_id, config)
        icfg = img.config
        argv = container_argv(config, icfg)
        cid = secrets.token_hex(32)
        cdir = self.root / "containers" / cid
        rootfs = cdir / "rootfs"
        env = container_env(config, icfg, sandbox_config, os.environ.get("PATH", os.defpath), {
            "HOME": str(rootfs),  # writes to ~ stay inside the container's tree (unless the image sets HOME)
            "KYBERN_ROOTFS": str(rootfs)})  # where absolute paths of the pod spec live
        wd = config.working_dir or icfg.get("workingDir") or "/"
        cwd = rootfs / wd.lstrip("/")
        # the container's tree: a copy of the image, its mounts, its working dir. Made on
        # the event loop for a small image: a thread hop per step cost more CPU (GIL and
        # futex hand-offs) than the few syscalls themselves (docs/benchmarks.md, issue 4)
        try:
            if img.size <= INLINE_COPY_BYTES:
                make_tree(img.rootfs, img.id, rootfs, config.mounts, cwd)
            else:
                await asyncio.to_thread(make_tree, img.rootfs, img.id, rootfs, config.mounts, cwd)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, cdir, True)
            raise
        log_path = os.path.join(sandbox_config.log_directory, config.log_path) if config.log_path else str(
            cdir / "container.log")
        status = ContainerStatus(id=cid, sandbox_id=sandbox_id, name=config.name, attempt=config.attempt,
                                 state=CREATED, image=img.ref, image_ref=img.repo_digest,
                                 created_at=time.time(), log_path=log_path, labels=dict(config.labels))
        c = _Container(status, config, cdir, str(cwd), argv, env)
        c.fresh = FreshTree(str(img.rootfs), img.id, config.mounts)
        try:
            if self.cgroups.enabled and sandbox_config.cgroup_parent:
                c.cgroup = self._container_cgroup(sandbox_config, cid, config.resources)
        except OSError as e:
            shutil.rmtree(cdir, ignore_errors=True)
            raise ContainerError("CreateContainerError", f"failed to create the container's cgroup: {e}") from e
        if self.mount_namespaces:  # its volumes at their absolute paths (mountns.py)
            try:
                c.mntns_fd = mountns.make(config.mounts, str(cdir / "mnt"), [self.data_dir])
            except BaseException:
                if c.cgroup:
                    await asyncio.to_thread(self.cgroups.remove, c.cgroup)
                shutil.rmtree(cdir, ignore_errors=True)
                raise
        # no state.json yet: the start right after writes it. Each file created costs an
        # inode allocation, the kernel's biggest share of a pod start on ext4 (docs/benchmarks.md);
        # a record-less directory left by an agent stopped in between is removed at start()
        self._keep(c)
        return cid

    async def start_container(self, container_id: str) -> None:
        c = self._get(container_id)
        if c.status.state != CREATED:
            raise ContainerError("StartError", f"container {container_id} is not in created state")
        writer = LogWriter(c.status.log_path)
        try:
            argv, exe, cwd, execvp_finds, identity, spaces = self._start_target(c)
        except ContainerError as e:
            writer.close()
            self._finish(c, 128, "StartError", e.message, started=False)
            raise
        finally:
            c.fresh = None  # from now on the container may change its tree
        # Our own pipes (or pty) rather than asyncio's PIPE: asyncio would make wait()
        # also wait for the pipes to close, which a leftover background process can delay
        c.io = io = ContainerIO.open(tty=c.config.tty, stdin=c.config.stdin)
        join = self.cgroups.joiner(c.cgroup, io.preexec)  # in its cgroup before it execs
        preexec, nsfds = self.sandboxes.preexec(spaces, join)
        try:
            proc = await spawn(argv, exe, cwd=cwd, env=c.env, stdio=io.child, preexec=preexec,
                               namespaces=spaces, tty=c.config.tty,
                               execvp_finds=execvp_finds, worker=self.spawner, cgroup_procs=join.paths,
                               identity=identity)
        except OSError as e:
            join.close()
            for fd in nsfds:
                os.close(fd)
            io.abort()
            writer.close()
            msg = f'exec: "{c.argv[0]}": {e.strerror or e}'
            self._finish(c, 128, "StartError", msg, started=False)
            raise ContainerError("StartError", msg) from e
        _placed(join, proc)
        c.proc_create_time = proc.start_time if isinstance(proc, RemoteChild) else start_time(proc.pid)
        for fd in nsfds:
            os.close(fd)
        io.after_spawn()
        stdout, stderr = await io.reader(io.out_r), await io.reader(io.err_r)
        c.status.pid = proc.pid
        c.status.state = RUNNING
        c.status.started_at = time.time()
        self._save(c)
        c.task = asyncio.create_task(self._supervise(c, proc, writer, stdout, stderr),
                                     name=f"container-{c.config.name}")
        self._emit(c)

    async def _supervise(self, c: _Container, proc: Any, writer: LogWriter,
                         stdout: tuple[asyncio.StreamReader, asyncio.BaseTransport],
                         stderr: tuple[asyncio.StreamReader, asyncio.BaseTransport]) -> None:
        async def pump(pipe: tuple[asyncio.StreamReader, asyncio.BaseTransport], name: str) -> None:
            reader, transport = pipe
            try:
                while chunk := await reader.read(65536):
                    writer.write(name, chunk)
                    io.publish(name, chunk)  # to attached sessions
                writer.close_stream(name)
            finally:
                transport.close()

        io = c.io or ContainerIO(tty=False, stdin=False)
        pumps = asyncio.gather(pump(stdout, "stdout"), pump(stderr, "stderr"))
        try:
            rc = await proc.wait()
        except asyncio.CancelledError:
            _kill_tree(proc.pid, c.proc_create_time, signal.SIGKILL)
            raise
        oom = self.cgroups.oom_kills(c.cgroup) > 0
        # the main process is gone: what is left of its group (and of its
        # cgroup) goes with it, as in a PID namespace whose init exited
        _kill_group(proc.pid, signal.SIGKILL)
        if c.cgroup:
            await asyncio.to_thread(self.cgroups.kill, c.cgroup)
        try:
            await asyncio.wait_for(asyncio.shield(pumps), 2.0)
        except Exception:  # noqa: BLE001 -- timeout or a broken pipe: stop reading
            pumps.cancel()  # a descendant that left the group still holds the pipe
        writer.close()
        io.finish()
        code = rc if rc >= 0 else 128 - rc
        # as containerd: an OOM kill in the container's cgroup is the reason, whatever the exit code
        reason = "OOMKilled" if oom else "Completed" if code == 0 else "Error"
        self._finish(c, code, reason, "", started=True)

    def _finish(self, c: _Container, code: int, reason: str, message: str, *, started: bool) -> None:
        now = time.time()
        c.status.state = EXITED
        c.status.exit_code = code
        c.status.reason = reason
        c.status.message = message
        c.status.finished_at = now
        if not started:
            c.status.started_at = 0.0
        c.exited.set()
        self._save(c)
        self._emit(c)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        c = self._containers.get(container_id)
        if c is None or c.status.state != RUNNING:
            return
        pid = c.status.pid
        tree = _descendants(pid)
        if timeout > 0:
            _kill_group(pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(c.exited.wait(), timeout)
            except TimeoutError:
                pass
        _kill_group(pid, signal.SIGKILL)
        for p in tree:  # descendants that started their own session
            try:
                p.kill()
            except psutil.Error:
                pass
        if c.cgroup:  # and any that also left the tree
            await asyncio.to_thread(self.cgroups.kill, c.cgroup)
        try:
            await asyncio.wait_for(c.exited.wait(), 10)
        except TimeoutError:
            log.warning("container %s (pid %d) did not exit after SIGKILL", c.config.name, pid)

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool, stdin: bool) -> ExecProcess:
        """Start `cmd` beside a running container with streams (`kubectl exec`)."""
        c = self._get(container_id)
        if c.status.state != RUNNING or not cmd:
            raise ContainerError("NotRunning" if cmd else "ExecError", f"container {container_id} is not running")
        found = _resolve(cmd[0], c.dir / "rootfs", c.cwd, c.env.get("PATH", ""))
        if found is None:
            raise ContainerError("ExecError", f'exec: "{cmd[0]}": executable file not found in $PATH')
        exe = found[0]
        ident = _identity(c.config)
        if ident:  # the container's user and groups (securityContext), as its main process
            cmd, exe = ([SETPRIV or "setpriv", f"--reuid={ident['user']}", f"--regid={ident['group']}",
                         "--groups=" + ",".join(map(str, ident["extra_groups"])) if ident["extra_groups"]
                         else "--clear-groups", "--", exe, *cmd[1:]], SETPRIV or "setpriv")
        spaces = self._namespaces(c)
        if spaces:  # nsenter execs the command: same pid, inside the pod's network, hostname, mounts
            # entering the mounts moves to their root; nsenter's --wd would open the dir before
            # entering them (out of the container's reach), so env changes to it once inside
            wd = ["env", f"--chdir={c.cwd}", "--"] if "mnt" in spaces else []
            cmd, exe = (["nsenter", *(f"--{'mount' if kind == 'mnt' else kind}={path}"
                                      for kind, path in spaces.items()), "--", *wd, exe, *cmd[1:]],
                        shutil.which("nsenter") or "nsenter")
        ep = await spawn_exec(cmd, exe, c.cwd, c.env, tty=tty, stdin=stdin)
        self.cgroups.join(c.cgroup, ep.proc.pid)  # counted against the container's limits, as upstream
        return ep

    def attach(self, container_id: str) -> ContainerIO | None:
        """The running main process's streams (`kubectl attach`)."""
        c = self._containers.get(container_id)
        return c.io if c is not None and c.status.state == RUNNING else None

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: float) -> tuple[int, bytes]:
        """Run `cmd` beside a running container: same environment, working dir
        and executable lookup. Output is capped at 10 KiB, as the kubelet caps
        probe output."""
        c = self._get(container_id)
        if c.status.state != RUNNING:
            raise ContainerError("NotRunning", f"container {container_id} is not running")
        if not cmd:
            raise ContainerError("ExecError", "no command specified")
        target = self._exec_target(c, cmd)
        if target is None:
            return 127, f'exec: "{cmd[0]}": executable file not found in $PATH'.encode()
        argv, exe, cwd, execvp_finds, identity = target
        join = self.cgroups.joiner(c.cgroup, _die_with_parent)
        spaces = self._namespaces(c)
        preexec, nsfds = self.sandboxes.preexec(spaces, join)
        out_r, out_w = os.pipe()  # stdout and stderr, as the kubelet combines them
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            proc = await spawn(argv, exe, cwd=cwd, env=c.env, stdio=[devnull, out_w, out_w], preexec=preexec,
                               namespaces=spaces, tty=False,
                               execvp_finds=execvp_finds, worker=self.spawner, cgroup_procs=join.paths,
                               identity=identity)
        except OSError as e:
            join.close()
            os.close(out_r)
            return 126, f'exec: "{cmd[0]}": {e.strerror or e}'.encode()
        except BaseException:
            join.close()
            raise
        finally:
            for fd in (*nsfds, out_w, devnull):
                os.close(fd)
        _placed(join, proc)
        try:
            out = await asyncio.wait_for(read_to_eof(out_r), timeout)
            await asyncio.wait_for(proc.wait(), timeout)
        except (TimeoutError, asyncio.CancelledError):
            _kill_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
            raise
        _kill_group(proc.pid, signal.SIGKILL)  # whatever it left behind
        rc = proc.returncode if proc.returncode is not None else 1
        return (rc if rc >= 0 else 128 - rc), out[:10240]

    def _start_target(self, c: _Container) -> tuple[list[str], str, str, bool, Any, dict[str, str]]:
        """How start_container starts `c`: (argv, executable, working dir, whether execvp finds
        the executable, identity, namespaces to enter); ContainerError("StartError") if it cannot."""
        found = _resolve(c.argv[0], c.dir / "rootfs", c.cwd, c.env.get("PATH", ""), c.fresh)
        if found is None:
            msg = f'exec: "{c.argv[0]}": executable file not found in $PATH'
            if "/" in c.argv[0]:
                msg = f'exec: "{c.argv[0]}": stat {c.argv[0]}: no such file or directory'
            raise ContainerError("StartError", msg)
        return c.argv, found[0], c.cwd, found[1], _identity(c.config), self._namespaces(c)

    def _exec_target(self, c: _Container, cmd: list[str]) -> tuple[list[str], str, str, bool, Any] | None:
        """How exec_sync starts `cmd` in `c`: (argv, executable, working dir, whether execvp finds
        the executable, identity), or None when the executable is not found."""
        found = _resolve(cmd[0], c.dir / "rootfs", c.cwd, c.env.get("PATH", ""))
        if found is None:
            return None
        return cmd, found[0], c.cwd, found[1], _identity(c.config)

    async def remove_container(self, container_id: str) -> None:
        c = self._containers.get(container_id)
        if c is None:
            return
        if c.status.state == RUNNING:
            await self.stop_container(container_id, 0)
        self._forget(container_id)
        if c.mntns_fd is not None:
            os.close(c.mntns_fd)
            c.mntns_fd = None
        if c.cgroup:
            await asyncio.to_thread(self.cgroups.remove, c.cgroup)
        await self._discard(c)
        try:
            os.unlink(c.status.log_path)
        except OSError:
            pass

    async def _discard(self, c: _Container) -> None:
        """What is left of a removed container besides its cgroup and log: its tree."""
        await asyncio.to_thread(shutil.rmtree, c.dir, True)

    def container_usage(self, container_id: str) -> tuple[float, int] | None:
        """(CPU seconds, working set bytes) from the container's cgroup, or None
        without one. Reads files only: safe to call from a thread (stats.py)."""
        c = self._containers.get(container_id)
        return self.cgroups.usage(c.cgroup) if c is not None else None

    def _container_cgroup(self, sandbox: PodSandboxConfig, cid: str, resources: dict[str, int]) -> str:
        self.cgroups.ensure_pod(sandbox.cgroup_parent, sandbox.resources)  # gone if an agent stopped since
        return self.cgroups.create_container(sandbox.cgroup_parent, cid, resources)

    def _namespaces(self, c: _Container) -> dict[str, str]:
        """The namespaces a container's processes enter, by kind: its pod's, and its own mounts."""
        spaces = self.sandboxes.namespaces(c.status.sandbox_id)
        if c.mntns_fd is not None:
            spaces["mnt"] = f"/proc/{os.getpid()}/fd/{c.mntns_fd}"
        return spaces

    def _get(self, container_id: str) -> _Container:
        c = self._containers.get(container_id)
        if c is None:
            raise ContainerError("NotFound", f"container {container_id} not found")
        return c

    def _save(self, c: _Container) -> None:
        if c.dir.exists():
            write_record(c.dir / "state.json", c.to_json())

    def _reap_leftover(self, c: _Container) -> None:
        """A container recorded as running by an agent that is gone: kill what
        is left of it and record it as killed."""
        _kill_tree(c.status.pid, c.proc_create_time, signal.SIGKILL)
        self.cgroups.kill(c.cgroup)
        c.status.state = EXITED
        c.status.exit_code = 137
        c.status.reason = "Error"
        c.status.message = "killed: the node agent that ran this container stopped"
        c.status.finished_at = time.time()
        c.exited.set()
        self._save(c)

    # -- images -------------------------------------------------------------
    async def image_status(self, ref: str) -> ImageStatus | None:
        img = self.images.get(ref)
        if img is None:
            return None
        return ImageStatus(ref=img.ref, id=img.id, repo_digest=img.repo_digest, size=img.size)

    async def pull_image(self, ref: str) -> ImageStatus:
        """"Pulling" resolves from the local store only: there is no registry."""
        try:
            parsed = parse_ref(ref)
        except InvalidReference as e:
            raise ImagePullError(f'couldn\'t parse image name "{ref}": {e}') from e
        st = await self.image_status(ref)
        if st is None:
            raise ImagePullError(
                f'image "{parsed.name}" is not in the local image store of this node '
                f'(kybern does not pull from registries); import it with: '
                f'kybern image import {parsed.familiar} DIR')
        return st


def container_argv(config: ContainerConfig, icfg: dict[str, Any]) -> list[str]:
    """The command a container runs: the pod spec's command/args over the image's entrypoint/cmd."""
    if config.command:
        argv = config.command + config.args
    elif config.args:
        argv = list(icfg.get("entrypoint") or []) + config.args
    else:
        argv = list(icfg.get("entrypoint") or []) + list(icfg.get("cmd") or [])
    if not argv:
        raise ContainerError("CreateContainerError", "failed to generate container spec: no command specified")
    return argv


def container_env(config: ContainerConfig, icfg: dict[str, Any], sandbox: PodSandboxConfig, path: str,
                  defaults: dict[str, str]) -> dict[str, str]:
    """A container's environment: the image's, PATH (`path` if the image sets none), HOSTNAME,
    the runtime's `defaults` the image does not set, then the container config's."""
    env: dict[str, str] = {}
    for kv in icfg.get("env") or []:
        k, _, v = kv.partition("=")
        env[k] = v
    env.setdefault("PATH", path)
    env["HOSTNAME"] = sandbox.hostname or sandbox.name
    for k, v in defaults.items():
        env.setdefault(k, v)
    for k, v in config.env:
        env[k] = v
    return env


_HOST_LOOKUP_TTL = 2.0
_host_lookups: dict[str, tuple[float, bool]] = {}


def _executable(p: str) -> bool:
    return os.path.isfile(p) and os.access(p, os.X_OK)


def _host_executable(p: str) -> bool:
    """_executable() for a path on the host, remembered for 2 s: every container
    start walks its PATH, and the host's directories do not change that often
    (a program installed just now is found at most 2 s later)."""
    now = time.monotonic()
    hit = _host_lookups.get(p)
    if hit is not None and now - hit[0] < _HOST_LOOKUP_TTL:
        return hit[1]
    found = _executable(p)
    if len(_host_lookups) > 4096:
        _host_lookups.clear()
    _host_lookups[p] = (now, found)
    return found


def _resolve(argv0: str, rootfs: Path, cwd: str, path_env: str,
             tree: FreshTree | None = None) -> tuple[str, bool] | None:
    """Find the executable for argv[0]: inside the container's tree first, then
    on the host (this runtime has no chroot). Also tells whether execvp(argv0) in
    a child with that PATH and working dir finds the same file (spawn.py's fast
    path needs it: a file found inside the tree is not what execvp would run).
    `tree`: the tree is fresh from make_tree() (a container start), so its image's
    listing answers for it where it can. Plain strings, not Paths: this runs for
    every container start, exec and exec probe."""
    root = str(rootfs)

    def inside(rel: str) -> bool:
        known = tree.executable(rel) if tree is not None else None
        return known if known is not None else _executable(os.path.join(root, rel))

    if "/" in argv0:
        if argv0.startswith("/"):
            if inside(argv0.lstrip("/")):
                return os.path.join(root, argv0.lstrip("/")), False
            return (argv0, True) if _executable(argv0) else None
        rel = os.path.join(cwd, argv0)
        return (rel, True) if _executable(rel) else None
    for d in path_env.split(os.pathsep):  # f-strings, not os.path.join: ~15 directories per start
        if not d:
            continue
        d = d.rstrip("/") or "/"
        rel = f"{d.lstrip('/')}/{argv0}".lstrip("/")
        if inside(rel):
            return f"{root}/{rel}", False
        cand = f"{d}/{argv0}" if d != "/" else f"/{argv0}"
        absolute = d.startswith("/")
        if (_host_executable if absolute else _executable)(cand):
            return cand, absolute  # a relative entry: execvp resolves it from the child's cwd
    return None


def _identity(config: ContainerConfig) -> dict[str, Any] | None:
    """Popen's user, group and extra_groups for the container's processes: its
    securityContext's (ContainerConfig.run_as_*), applied when the agent runs as
    root (it cannot become another user otherwise; docs/node.md)."""
    if (config.run_as_user is None and config.run_as_group is None and not config.supplemental_groups) \
            or os.geteuid() != 0:
        return None
    group = config.run_as_group or 0  # unset: root's, as the runtime's own
    return {"user": config.run_as_user or 0, "group": group,
            "extra_groups": sorted({*config.supplemental_groups, group})}


def _placed(join: Any, proc: Any) -> None:
    """Right after a spawn: on the agent's own vfork path, the process (and what
    it forked by then) into its cgroup, as the spawn worker does for its own;
    the fork path joined before exec. Then the joiner is done."""
    if isinstance(proc, Child):
        move_into_cgroup(join.paths, proc.pid, log.warning)
    join.close()
