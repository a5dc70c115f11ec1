"""The runtime interface the node agent drives: a small, CRI-shaped contract.

It mirrors the Container Runtime Interface's RuntimeService and ImageService
(RunPodSandbox, CreateContainer, StartContainer, StopContainer, ContainerStatus,
ListContainers, PullImage, ImageStatus, GetContainerEvents) so that the
`process` runtime, a future `linux` runtime (namespaces + cgroups), a `cri`
runtime (containerd over gRPC) and a `fake` runtime (hollow nodes) are
interchangeable. The agent decides *what* should run; a runtime only does what
it is told and reports what it observes.

Division of work, as between kubelet and containerd:
- the agent resolves env (ConfigMaps, Secrets, fieldRefs) and expands $(VAR) in
  command/args, chooses the log path, counts attempts;
- the runtime merges the image config (entrypoint/cmd/env/workingDir) with the
  container config, runs the process, writes its output in the CRI log format
  and reports exits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

# Container states, as CRI's ContainerState enum.
CREATED = "created"
RUNNING = "running"
EXITED = "exited"
UNKNOWN = "unknown"


class ContainerError(Exception):
    """A runtime operation failed; `reason` is what containerStatuses show."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ImagePullError(ContainerError):
    def __init__(self, message: str) -> None:
        super().__init__("ErrImagePull", message)


@dataclass
class PodSandboxConfig:
    name: str
    namespace: str
    uid: str
    attempt: int = 0
    hostname: str = ""
    log_directory: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    host_network: bool = False  # spec.hostNetwork: no network namespace of its own
    # hostPort mappings for CNI's portmap: {"hostPort", "containerPort", "protocol"}
    port_mappings: list[dict[str, Any]] = field(default_factory=list)
    # CRI's linux.cgroup_parent ("kubepods/burstable/pod<uid>", relative to the
    # runtime's cgroup root) and the pod-level resources (runtimes/cgroups.py)
    cgroup_parent: str = ""
    resources: dict[str, int] = field(default_factory=dict)


@dataclass
class PodSandboxStatus:
    id: str
    name: str
    namespace: str
    uid: str
    attempt: int
    ready: bool
    ip: str
    created_at: float
    netns: str = ""  # path of the pod's network namespace; "" = the host's network
    utsns: str = ""  # path of the pod's UTS namespace (its hostname); "" = the host's


@dataclass
class Mount:
    """A volume made visible inside a container (CRI's Mount). The agent
    prepares `host_path`; how it appears at `container_path` is the runtime's
    business (the process runtime: a symlink inside the container's tree)."""

    container_path: str
    host_path: str
    readonly: bool = False


@dataclass
class ContainerConfig:
    name: str
    image: str  # an image reference the runtime's image service resolves
    attempt: int = 0
    command: list[str] = field(default_factory=list)  # overrides the image entrypoint
    args: list[str] = field(default_factory=list)  # overrides the image cmd
    env: list[tuple[str, str]] = field(default_factory=list)  # resolved and ordered
    working_dir: str = ""
    mounts: list[Mount] = field(default_factory=list)
    log_path: str = ""  # relative to the sandbox's log_directory
    # CRI LinuxContainerResources: cpu_shares, cpu_quota, cpu_period, memory_limit_in_bytes
    resources: dict[str, int] = field(default_factory=dict)
    stdin: bool = False  # keep a stdin open for `kubectl attach -i`
    stdin_once: bool = False  # close it when the first attach session ends
    tty: bool = False  # run the main process on a pseudo-terminal
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    # CRI LinuxContainerSecurityContext: the process's user, group and supplementary groups
    # (None: the runtime's own, root as the runtime runs)
    run_as_user: int | None = None
    run_as_group: int | None = None
    supplemental_groups: list[int] = field(default_factory=list)
    # the rest of LinuxContainerSecurityContext, as the kubelet fills it; the linux runtime
    # applies them, the process runtime cannot (docs/node.md)
    capabilities_add: list[str] = field(default_factory=list)  # as written: "NET_ADMIN", "CAP_NET_ADMIN", "ALL"
    capabilities_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    readonly_rootfs: bool = False
    no_new_privs: bool = False  # allowPrivilegeEscalation: false
    # seccompProfile: {} (Unconfined), {"type": "RuntimeDefault"}, {"type": "Localhost", "path": <file>}
    seccomp: dict[str, str] = field(default_factory=dict)
    pid_namespace: str = "container"  # NamespaceOption.pid: container | pod (shareProcessNamespace) | node
    ipc_namespace: str = "pod"  # NamespaceOption.ipc: pod | node (hostIPC)


@dataclass
class ContainerStatus:
    id: str
    sandbox_id: str
    name: str
    attempt: int
    state: str  # CREATED | RUNNING | EXITED | UNKNOWN
    image: str  # normalised reference
    image_ref: str  # repository@digest
    created_at: float
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""  # Completed | Error | StartError | OOMKilled ...
    message: str = ""
    log_path: str = ""  # absolute
    pid: int = 0
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ImageStatus:
    ref: str  # normalised name
    id: str  # sha256:...
    repo_digest: str  # repository@sha256:...
    size: int
    # the image config's user as CRI's Image reports it: a numeric user in uid, a name in
    # username; neither: root (the kubelet's runAsNonRoot check reads them)
    uid: int | None = None
    username: str = ""


ContainerEventHandler = Callable[[ContainerStatus], None]


class RuntimeState:
    """What every runtime keeps the same way: its containers by id (each with a
    `.status`), the status queries over them, and the handlers the agent
    registers (GetContainerEvents), told of every status change."""

    def __init__(self) -> None:
        self._containers: dict[str, Any] = {}
        self._by_sandbox: dict[str, dict[str, Any]] = {}  # a pod's containers without a scan of all
        self._handlers: list[ContainerEventHandler] = []

    def _keep(self, c: Any) -> None:
        self._containers[c.status.id] = c
        self._by_sandbox.setdefault(c.status.sandbox_id, {})[c.status.id] = c

    def _forget(self, container_id: str) -> Any:
        c = self._containers.pop(container_id, None)
        if c is not None:
            mine = self._by_sandbox.get(c.status.sandbox_id, {})
            mine.pop(container_id, None)
            if not mine:
                self._by_sandbox.pop(c.status.sandbox_id, None)
        return c

    def add_event_handler(self, handler: ContainerEventHandler) -> None:
        self._handlers.append(handler)

    def _emit(self, c: Any) -> None:
        """Report `c.status` to every handler; one failing handler does not stop the others."""
        for h in self._handlers:
            try:
                h(c.status)
            except Exception:
                log.exception("container event handler failed")

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        c = self._containers.get(container_id)
        return c.status if c else None

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        found = self._containers if sandbox_id is None else self._by_sandbox.get(sandbox_id, {})
        return [c.status for c in found.values()]
"""Called (on the event loop) when a container changes state, as CRI's
GetContainerEvents stream: the agent wakes the pod's worker instead of polling."""


@runtime_checkable
class Runtime(Protocol):
    name: str  # e.g. "process": containerIDs are "<name>://<id>"
    version: str

    # -- lifecycle of the runtime itself ------------------------------------
    async def start(self) -> None:
        """Load state, reap what a previous agent left behind."""

    async def shutdown(self, timeout: float) -> None:
        """Stop every container (this runtime's containers do not outlive it)."""

    def add_event_handler(self, handler: ContainerEventHandler) -> None: ...

    # -- sandboxes ----------------------------------------------------------
    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str: ...

    async def stop_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def remove_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus | None: ...

    async def list_pod_sandboxes(self) -> list[PodSandboxStatus]: ...

    # -- containers ---------------------------------------------------------
    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox_config: PodSandboxConfig) -> str: ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, timeout: float) -> None: ...

    async def remove_container(self, container_id: str) -> None: ...

    async def container_status(self, container_id: str) -> ContainerStatus | None: ...

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]: ...

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: float) -> tuple[int, bytes]:
        """Run `cmd` in a running container's environment and working dir (CRI
        ExecSync) and return (exit code, stdout+stderr). Used by exec probes and
        lifecycle hooks; raises TimeoutError after `timeout` seconds (the command
        is killed) and ContainerError when the container is not running."""
        ...

    # -- streaming (kubectl exec / attach) ----------------------------------
    async def exec(self, container_id: str, cmd: list[str], *, tty: bool, stdin: bool) -> Any:
        """Start `cmd` beside a running container; returns a handle with `io`
        (its streams), `output` (a subscription), `wait()` and `kill()`."""
        ...

    def attach(self, container_id: str) -> Any:
        """The running main process's streams (subscribe/publish/write_stdin/
        resize), or None."""
        ...

    # -- images -------------------------------------------------------------
    async def image_status(self, ref: str) -> ImageStatus | None: ...

    async def pull_image(self, ref: str) -> ImageStatus:
        """Make image `ref` available; raise ImagePullError when it cannot be."""
        ...
