"""The `fake` runtime: hollow nodes for scale tests (as kubemark's hollow kubelet).

Everything the agent asks for succeeds and nothing runs: a container is a record
that says *running* from the moment it is started, until the agent stops it.
The agent around it is the real one — it registers the Node, renews its Lease,
watches its pods, resolves env and volumes, writes pod status and events — so
many fake agents load the apiserver, the scheduler and the controllers as real
nodes would, at a fraction of the cost (no processes, no copies of image trees,
no network namespaces, no cgroups).

What a fake container does:
- it starts at once and runs until stopped (SIGTERM is "obeyed" at once);
- with `KYBERN_FAKE_EXIT_CODE` and/or `KYBERN_FAKE_RUN_SECONDS` in its env
  (from the pod spec), it exits by itself after that many seconds (default 0)
  with that code (default 0): how init containers and Jobs finish here, since
  nothing tells the runtime which containers are meant to exit;
- its log is an empty CRI log file (`kubectl logs` answers with nothing);
- `exec_sync` (exec probes, lifecycle hooks) answers exit code 0, no output;
  interactive `kubectl exec` and `kubectl attach` are refused ("the fake
  runtime runs no processes");
- every image is present (pulls succeed at once; the digest is derived from
  the reference), so image errors are not reproduced.

The pod IP is the agent's address (as the process runtime with the host's
network); httpGet/tcpSocket probes really connect there and fail unless
something answers. State lives in memory only: an agent restarted with the
fake runtime starts its pods' containers again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from kybern.node.images import InvalidReference, parse_ref
from kybern.node.runtimes.base import (
    CREATED,
    EXITED,
    RUNNING,
    ContainerConfig,
    ContainerError,
    ContainerStatus,
    ImagePullError,
    ImageStatus,
    PodSandboxConfig,
    PodSandboxStatus,
    RuntimeState,
)

log = logging.getLogger(__name__)

EXIT_CODE_ENV = "KYBERN_FAKE_EXIT_CODE"
RUN_SECONDS_ENV = "KYBERN_FAKE_RUN_SECONDS"
NO_PROCESSES = "the fake runtime runs no processes"


@dataclass
class _Sandbox:
    status: PodSandboxStatus
    stopped: bool = False


@dataclass
class _Container:
    status: ContainerStatus
    exit_after: float | None = None  # seconds after start; None = runs until stopped
    exit_code: int = 0
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


def _exit_plan(env: list[tuple[str, str]]) -> tuple[float | None, int]:
    vals = dict(env)
    if EXIT_CODE_ENV not in vals and RUN_SECONDS_ENV not in vals:
        return None, 0
    try:
        after = max(float(vals.get(RUN_SECONDS_ENV) or 0), 0.0)
        code = int(vals.get(EXIT_CODE_ENV) or 0)
    except ValueError as e:
        raise ContainerError("CreateContainerError", f"fake runtime: bad {EXIT_CODE_ENV}/{RUN_SECONDS_ENV}: {e}") \
            from None
    return after, code


class FakeRuntime(RuntimeState):
    name = "fake"
    version = "0.1.0"

    def __init__(self, *, host_ip: str = "127.0.0.1") -> None:
        self.host_ip = host_ip
        self._sandboxes: dict[str, _Sandbox] = {}
        super().__init__()

    # -- lifecycle ----------------------------------------------------------
    async def start(self) -> None:
        """Nothing to load or reap: no state survives the agent."""

    async def shutdown(self, timeout: float) -> None:
        for c in list(self._containers.values()):
            if c.status.state == RUNNING:
                self._exit(c, 137 if c.exit_after is None else c.exit_code, "Error")

    # -- sandboxes ----------------------------------------------------------
    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        sid = secrets.token_hex(16)
        if config.log_directory:
            os.makedirs(config.log_directory, exist_ok=True)
        self._sandboxes[sid] = _Sandbox(PodSandboxStatus(
            id=sid, name=config.name, namespace=config.namespace, uid=config.uid, attempt=config.attempt,
            ready=True, ip=self.host_ip, created_at=time.time()))
        return sid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        for c in list(self._containers.values()):
            if c.status.sandbox_id == sandbox_id:
                await self.stop_container(c.status.id, 0)
        sb = self._sandboxes.get(sandbox_id)
        if sb is not None:
            sb.stopped = True
            sb.status.ready = False

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        for c in list(self._containers.values()):
            if c.status.sandbox_id == sandbox_id:
                await self.remove_container(c.status.id)
        self._sandboxes.pop(sandbox_id, None)

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus | None:
        sb = self._sandboxes.get(sandbox_id)
        return sb.status if sb else None

    async def list_pod_sandboxes(self) -> list[PodSandboxStatus]:
        return [sb.status for sb in self._sandboxes.values()]

    # -- containers ---------------------------------------------------------
    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox_config: PodSandboxConfig) -> str:
        if sandbox_id not in self._sandboxes:
            raise ContainerError("CreateContainerError", f"pod sandbox {sandbox_id} not found")
        img = await self.image_status(config.image)
        if img is None:
            raise ContainerError("CreateContainerError", f'image "{config.image}" not found')
        after, code = _exit_plan(config.env)
        cid = secrets.token_hex(32)
        log_path = os.path.join(sandbox_config.log_directory, config.log_path) \
            if config.log_path and sandbox_config.log_directory else ""
        if log_path:  # an empty log, so `kubectl logs` finds the file
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            os.close(os.open(log_path, os.O_CREAT | os.O_WRONLY, 0o644))
        status = ContainerStatus(id=cid, sandbox_id=sandbox_id, name=config.name, attempt=config.attempt,
                                 state=CREATED, image=img.ref, image_ref=img.repo_digest,
                                 created_at=time.time(), log_path=log_path, labels=dict(config.labels))
        self._keep(_Container(status, after, code))
        return cid

    async def start_container(self, container_id: str) -> None:
        c = self._get(container_id)
        if c.status.state != CREATED:
            raise ContainerError("StartError", f"container {container_id} is not in created state")
        c.status.state = RUNNING
        c.status.started_at = time.time()
        if c.exit_after is not None:
            reason = "Completed" if c.exit_code == 0 else "Error"
            c.timer = asyncio.get_running_loop().call_later(
                c.exit_after, self._exit, c, c.exit_code, reason)
        self._emit(c)

    def _exit(self, c: _Container, code: int, reason: str) -> None:
        if c.status.state != RUNNING:
            return
        if c.timer is not None:
            c.timer.cancel()
            c.timer = None
        c.status.state = EXITED
        c.status.exit_code = code
        c.status.reason = reason
        c.status.finished_at = time.time()
        self._emit(c)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        c = self._containers.get(container_id)
        if c is None or c.status.state != RUNNING:
            return
        # as a process that exits on SIGTERM (143) or is killed without a grace period (137)
        self._exit(c, 143 if timeout > 0 else 137, "Error")

    async def remove_container(self, container_id: str) -> None:
        c = self._forget(container_id)
        if c is None:
            return
        if c.timer is not None:
            c.timer.cancel()
        if c.status.log_path:
            try:
                os.unlink(c.status.log_path)
            except OSError:
                pass

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: float) -> tuple[int, bytes]:
        c = self._get(container_id)
        if c.status.state != RUNNING:
            raise ContainerError("NotRunning", f"container {container_id} is not running")
        return 0, b""

    # -- streaming ----------------------------------------------------------
    async def exec(self, container_id: str, cmd: list[str], *, tty: bool, stdin: bool) -> Any:
        self._get(container_id)
        raise ContainerError("ExecError", NO_PROCESSES)

    def attach(self, container_id: str) -> Any:
        return None

    # -- images -------------------------------------------------------------
    async def image_status(self, ref: str) -> ImageStatus | None:
        try:
            parsed = parse_ref(ref)
        except InvalidReference:
            return None
        digest = parsed.digest or "sha256:" + hashlib.sha256(parsed.name.encode()).hexdigest()
        return ImageStatus(ref=parsed.name, id=digest, repo_digest=f"{parsed.repository}@{digest}", size=0)

    async def pull_image(self, ref: str) -> ImageStatus:
        st = await self.image_status(ref)
        if st is None:
            raise ImagePullError(f'failed to pull and unpack image "{ref}": invalid reference')
        return st

    def _get(self, container_id: str) -> _Container:
        c = self._containers.get(container_id)
        if c is None:
            raise ContainerError("NotFound", f"container {container_id} not found")
        return c
