"""How one container of a pod gets (re)started: image check per pull policy,
environment, create, start — with the kubelet's events, waiting reasons and
back-offs at each step.

    image missing         -> ErrImagePull, then ImagePullBackOff (10s..5m)
    pull policy Never     -> ErrImageNeverPull
    bad image name        -> InvalidImageName
    ConfigMap/Secret gone -> CreateContainerConfigError
    exec fails            -> terminated StartError (exit 128), then restart policy
    postStart hook fails  -> FailedPostStartHook, container killed, restart policy
    container exited      -> restart now, or CrashLoopBackOff (10s..5m)

Every method returns the wall-clock time at which the pod should be looked at
again, or None.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

from kybern.network import resolvconf
from kybern.node import etc_hosts, hooks
from kybern.node.backoff import Backoff, go_duration
from kybern.node.env import ConfigError, expand_command
from kybern.node.images import InvalidReference, parse_ref
from kybern.node.runtimes import cgroups, mountns
from kybern.node.runtimes.base import ContainerConfig, ContainerError, ImagePullError, Mount
from kybern.node.status import FALLBACK_SUFFIX, TERMINATION_SUFFIX, ContainerView

if TYPE_CHECKING:
    from kybern.node.agent import NodeAgent
    from kybern.node.pod_worker import PodWorker

TERMINATION_LOG_HOST_FILE = "/dev/termination-log"  # upstream's default terminationMessagePath
CONFIG_ERROR_RETRY = 5.0  # ConfigMaps/Secrets are not watched; look again soon
NEVER_PULL_RETRY = 10.0


def default_pull_policy(image: str) -> str:
    """As apiserver defaulting: Always for :latest or untagged, else IfNotPresent."""
    try:
        ref = parse_ref(image)
    except InvalidReference:
        return "IfNotPresent"
    return "Always" if ref.tag == "latest" and not ref.digest else "IfNotPresent"


def process_identity(pod: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    """The container's user, group and supplementary groups (ContainerConfig's fields),
    as the kubelet derives them: runAsUser and runAsGroup from the container's
    securityContext, else the pod's (None: unset, the runtime decides); the pod's
    supplementalGroups and fsGroup as supplementary groups (the runtime adds the
    group itself, as containerd does)."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = c.get("securityContext") or {}
    user, group = sc.get("runAsUser", pod_sc.get("runAsUser")), sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    groups = {int(g) for g in pod_sc.get("supplementalGroups") or []}
    if pod_sc.get("fsGroup") is not None:
        groups.add(int(pod_sc["fsGroup"]))
    if user is None and group is None and not groups:
        return {}
    return {"run_as_user": int(user) if user is not None else None,
            "run_as_group": int(group) if group is not None else None, "supplemental_groups": sorted(groups)}


def security_options(pod: dict[str, Any], c: dict[str, Any], seccomp_root: str) -> dict[str, Any]:
    """The rest of the container's LinuxContainerSecurityContext (ContainerConfig's
    fields), as the kubelet fills it: capabilities as written, privileged,
    readOnlyRootFilesystem, no_new_privs from allowPrivilegeEscalation: false, the
    seccomp profile (the container's, else the pod's; a Localhost profile's file under
    `seccomp_root`, the kubelet's <root-dir>/seccomp) and the PID/IPC namespace modes
    (hostPID, shareProcessNamespace, hostIPC)."""
    spec = pod.get("spec") or {}
    pod_sc = spec.get("securityContext") or {}
    sc = c.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    out: dict[str, Any] = {
        "capabilities_add": list(caps.get("add") or []), "capabilities_drop": list(caps.get("drop") or []),
        "privileged": bool(sc.get("privileged")), "readonly_rootfs": bool(sc.get("readOnlyRootFilesystem")),
        "no_new_privs": sc.get("allowPrivilegeEscalation") is False,
        "pid_namespace": "node" if spec.get("hostPID") else "pod" if spec.get("shareProcessNamespace") else "container",
        "ipc_namespace": "node" if spec.get("hostIPC") else "pod",
    }
    profile = sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}
    if profile.get("type") == "RuntimeDefault":
        out["seccomp"] = {"type": "RuntimeDefault"}
    elif profile.get("type") == "Localhost":
        out["seccomp"] = {"type": "Localhost",
                          "path": os.path.join(seccomp_root, profile.get("localhostProfile") or "")}
    return out


def _non_root(pod: dict[str, Any], c: dict[str, Any]) -> tuple[bool, Any]:
    """runAsNonRoot and runAsUser in effect: the container's, else the pod's."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = c.get("securityContext") or {}
    return bool(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))), sc.get("runAsUser", pod_sc.get("runAsUser"))


def run_as_non_root_refusal(pod: dict[str, Any], c: dict[str, Any], pod_ref: str,
                            image_uid: int | None = None, image_username: str = "") -> str:
    """The kubelet's verifyRunAsNonRoot, checked before a container is created: with
    `runAsNonRoot: true` (container's securityContext, else the pod's) a runAsUser of 0,
    or no runAsUser and an image that runs as root (its user 0 or none: every image of
    the process runtime, which does not apply an image's user), or one whose user is a
    name (it cannot be checked), is a CreateContainerConfigError. "" when it may run.
    (runAsUser itself is applied by the runtime as root: process_identity.)"""
    non_root, user = _non_root(pod, c)
    if not non_root:
        return ""
    where = f'(pod: "{pod_ref}", container: {c["name"]})'
    if user is not None:
        return "" if int(user) != 0 else f"container's runAsUser breaks non-root policy {where}"
    if image_uid is None and image_username:
        return (f"container has runAsNonRoot and image has non-numeric user ({image_username}), "
                f"cannot verify user is non-root {where}")
    if image_uid:
        return ""
    return f"container has runAsNonRoot and image will run as root {where}"


def termination_message_mount(c: dict[str, Any], pod_dir: str, attempt: int, mounts: list[Mount]) -> Mount | None:
    """The container's terminationMessagePath, as the kubelet mounts it: an empty file
    of its own (`<pod dir>/<container>/<attempt>.termination-log`) bound at that path;
    what the program writes there becomes `state.terminated.message` (status.py).
    With `terminationMessagePolicy: FallbackToLogsOnError` a marker file beside it
    tells status.py to fall back to the log's tail. None when a volume covers the
    path or the path is unset."""
    path = c.get("terminationMessagePath", TERMINATION_LOG_HOST_FILE)
    if not path or not path.startswith("/"):
        return None
    if any(path == m.container_path.rstrip("/") or path.startswith(m.container_path.rstrip("/") + "/")
           for m in mounts):
        return None
    base = os.path.join(pod_dir, c["name"], str(attempt))
    os.makedirs(os.path.dirname(base), exist_ok=True)
    fd = os.open(base + TERMINATION_SUFFIX, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    os.fchmod(fd, 0o666)  # whatever user the container runs as may write its message (umask aside)
    os.close(fd)
    if c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        with open(base + FALLBACK_SUFFIX, "wb"):
            pass
    if path == TERMINATION_LOG_HOST_FILE:
        _ensure_host_termination_log()
    return Mount(container_path=path, host_path=base + TERMINATION_SUFFIX, readonly=False)


_host_file_made = False


def _ensure_host_termination_log() -> None:
    """With mount namespaces (root) a file mount whose path the host lacks needs a
    private root (~1 ms more per container, docs/node.md): so, as for the service
    account token's directory, the empty mount point is made on the host once."""
    global _host_file_made
    if _host_file_made or not mountns.supported():
        return
    _host_file_made = True
    with contextlib.suppress(OSError):
        if not os.path.lexists(TERMINATION_LOG_HOST_FILE):
            os.close(os.open(TERMINATION_LOG_HOST_FILE, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))


class ContainerStarter:
    def __init__(self, agent: NodeAgent, worker: PodWorker) -> None:
        self.agent = agent
        self.worker = worker
        self.crash = Backoff(agent.backoff_base, agent.backoff_max)
        self.pull = Backoff(agent.backoff_base, agent.backoff_max)
        self._pull_failed_at: dict[str, float] = {}
        self._reported: set[tuple[str, str, float]] = set()

    def _event(self, container: str, type_: str, reason: str, message: str) -> None:
        self.worker.container_event(container, type_, reason, message)

    def _once(self, name: str, what: str, stamp: float) -> bool:
        """True the first time (name, what, stamp) is seen: one event per back-off period."""
        key = (name, what, stamp)
        if key in self._reported:
            return False
        self._reported.add(key)
        if len(self._reported) > 256:
            self._reported.clear()
        return True

    # -- restart ------------------------------------------------------------
    async def restart(self, pod: dict[str, Any], c: dict[str, Any], v: ContainerView) -> float | None:
        cur = v.current
        assert cur is not None
        name = c["name"]
        now = time.time()
        if self.crash.in_backoff_since(name, cur.finished_at, now):
            delay = self.crash.delay(name, now)
            v.waiting_reason = "CrashLoopBackOff"
            v.waiting_message = (f"back-off {go_duration(delay)} restarting failed container={name} "
                                 f"pod={self.worker.pod_ref}")
            if self._once(name, "crash", cur.finished_at):
                self._event(name, "Warning", "BackOff",
                            f"Back-off restarting failed container {name} in pod {self.worker.pod_ref}")
            return cur.finished_at + delay
        self.crash.next(name, cur.finished_at)
        return await self.start(pod, c, v, attempt=cur.attempt + 1)

    async def start_created(self, pod: dict[str, Any], c: dict[str, Any], v: ContainerView) -> float | None:
        """A container created but never started (the agent stopped in between)."""
        assert v.current is not None
        await self.agent.runtime.remove_container(v.current.id)
        return await self.start(pod, c, v, attempt=v.current.attempt)

    # -- start --------------------------------------------------------------
    async def start(self, pod: dict[str, Any], c: dict[str, Any], v: ContainerView,
                    attempt: int) -> float | None:
        name = c["name"]
        image = c.get("image", "")
        ready, wake = await self._ensure_image(c, v)
        if not ready:
            return wake
        non_root, user = _non_root(pod, c)  # the image's user only matters then (the kubelet's getImageUser)
        st = await self.agent.runtime.image_status(image) if non_root and user is None else None
        refusal = run_as_non_root_refusal(pod, c, self.worker.pod_ref, st.uid if st else None,
                                          st.username if st else "")
        if refusal:
            v.waiting_reason, v.waiting_message = "CreateContainerConfigError", refusal
            self._event(name, "Warning", "Failed", f"Error: {refusal}")
            return time.time() + CONFIG_ERROR_RETRY
        try:
            env = await self.agent.env.resolve(self._with_ips(pod), c)
        except ConfigError as e:
            v.waiting_reason, v.waiting_message = "CreateContainerConfigError", str(e)
            self._event(name, "Warning", "Failed", f"Error: {e}")
            return time.time() + CONFIG_ERROR_RETRY
        command, args = expand_command(c, env)
        mounts = self.worker.volumes.mounts_for(c, env)
        # the pod's resolv.conf (dnsPolicy, dnsConfig), mounted as the kubelet does unless a volume covers it
        cluster_dns = getattr(self.agent, "cluster_dns", [resolvconf.CLUSTER_DNS_IP])
        resolv = resolvconf.write_for_pod(pod, self.worker.log_directory(), cluster_dns=cluster_dns)
        env = [*env, (resolvconf.ENV_VAR, resolv)]
        if not any(m.container_path.rstrip("/") in ("/etc", "/etc/resolv.conf") for m in mounts):
            mounts.append(Mount(container_path="/etc/resolv.conf", host_path=resolv, readonly=True))
        if self.worker.sandbox_ip and not any(m.container_path.rstrip("/") in ("/etc", "/etc/hosts")
                                              for m in mounts):  # the kubelet's managed /etc/hosts
            hosts = etc_hosts.write_for_pod(pod, self.worker.log_directory(), [self.worker.sandbox_ip])
            mounts.append(Mount(container_path="/etc/hosts", host_path=hosts, readonly=False))
        term = termination_message_mount(c, self.worker.log_directory(), attempt, mounts)
        if term is not None:
            mounts.append(term)
        cfg = ContainerConfig(
            name=name, image=image, attempt=attempt, command=command, args=args, env=env,
            working_dir=c.get("workingDir", ""), log_path=f"{name}/{attempt}.log",
            mounts=mounts, resources=cgroups.container_resources(c),
            stdin=bool(c.get("stdin")), stdin_once=bool(c.get("stdinOnce")), tty=bool(c.get("tty")),
            labels={"io.kubernetes.container.name": name, "io.kubernetes.pod.uid": self.worker.uid,
                    "io.kubernetes.pod.name": self.worker.name,
                    "io.kubernetes.pod.namespace": self.worker.namespace},
            **process_identity(pod, c),
            **security_options(pod, c, os.path.join(self.agent.data_dir, "seccomp")))
        assert self.worker.sandbox_id is not None
        rt = self.agent.runtime
        try:
            cid = await rt.create_container(self.worker.sandbox_id, cfg, self.worker.sandbox_config(pod))
        except ContainerError as e:
            v.waiting_reason, v.waiting_message = e.reason, e.message
            self._event(name, "Warning", "Failed", f"Error: {e.message}")
            return time.time() + self.crash.next(f"create:{name}")
        self._event(name, "Normal", "Created", f"Created container: {name}")
        try:
            await rt.start_container(cid)
        except ContainerError as e:
            self._event(name, "Warning", "Failed", f"Error: {e.message}")
        else:
            self._event(name, "Normal", "Started", f"Started container {name}")
            await hooks.post_start(self.worker, c, cid)
        v.waiting_reason = v.waiting_message = ""
        v.current, v.previous = await rt.container_status(cid), (
            v.current if v.current is not None and v.current.id != cid else v.previous)
        v.started = v.running and self.worker.probes.started(name, cid)
        v.ready = v.running and self.worker.probes.ready(name, cid)
        return None

    def _with_ips(self, pod: dict[str, Any]) -> dict[str, Any]:
        """The pod as the environment sees it: status.podIP(s) and hostIP(s) are the
        sandbox's and the node's, as the kubelet fills them in, even before the first
        status write (the first container of a pod starts before it)."""
        status = dict(pod.get("status") or {})
        pod_ip, host_ip = self.worker.sandbox_ip, self.agent.address
        if pod_ip:
            status["podIP"], status["podIPs"] = pod_ip, [{"ip": pod_ip}]
        if host_ip:
            status["hostIP"], status["hostIPs"] = host_ip, [{"ip": host_ip}]
        return {**pod, "status": status}

    async def _ensure_image(self, c: dict[str, Any], v: ContainerView) -> tuple[bool, float | None]:
        name = c["name"]
        image = c.get("image", "")
        rt = self.agent.runtime
        try:
            parse_ref(image)
        except InvalidReference as e:
            msg = f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": {e}'
            v.waiting_reason, v.waiting_message = "InvalidImageName", msg
            if self._once(name, "invalid", 0):
                self._event(name, "Warning", "InspectFailed", msg)
                self._event(name, "Warning", "Failed", "Error: InvalidImageName")
            return False, None  # only a spec change (a new pod) can fix it
        policy = c.get("imagePullPolicy") or default_pull_policy(image)
        present = await rt.image_status(image)
        if policy == "Never" or (policy == "IfNotPresent" and present is not None):
            if present is None:
                msg = f'Container image "{image}" is not present with pull policy of Never'
                v.waiting_reason, v.waiting_message = "ErrImageNeverPull", msg
                self._event(name, "Warning", "ErrImageNeverPull", msg)
                self._event(name, "Warning", "Failed", "Error: ErrImageNeverPull")
                return False, time.time() + NEVER_PULL_RETRY
            self._event(name, "Normal", "Pulled", f'Container image "{image}" already present on machine')
            return True, None

        now = time.time()
        failed_at = self._pull_failed_at.get(name)
        if failed_at is not None and self.pull.in_backoff_since(name, failed_at, now):
            prev = v.waiting_message.split(": ErrImagePull: ", 1)[-1] if v.waiting_message else ""
            v.waiting_reason = "ImagePullBackOff"
            v.waiting_message = f'Back-off pulling image "{image}": ErrImagePull: {prev}'
            if self._once(name, "pull-backoff", failed_at):
                self._event(name, "Normal", "BackOff", f'Back-off pulling image "{image}"')
                self._event(name, "Warning", "Failed", "Error: ImagePullBackOff")
            return False, failed_at + self.pull.delay(name, now)

        self._event(name, "Normal", "Pulling", f'Pulling image "{image}"')
        t0 = time.monotonic()
        try:
            status = await rt.pull_image(image)
        except ImagePullError as e:
            self._pull_failed_at[name] = now
            self.pull.next(name, now)
            v.waiting_reason, v.waiting_message = "ErrImagePull", e.message
            self._event(name, "Warning", "Failed", f'Failed to pull image "{image}": {e.message}')
            self._event(name, "Warning", "Failed", "Error: ErrImagePull")
            # look again shortly so the status moves on to ImagePullBackOff, as upstream
            return False, now + min(1.0, self.pull.delay(name, now))
        self._pull_failed_at.pop(name, None)
        self.pull.reset(name)
        took = go_duration(time.monotonic() - t0)
        self._event(name, "Normal", "Pulled", f'Successfully pulled image "{image}" in {took} ({took} including '
                                        f'waiting). Image size: {status.size} bytes.')
        return True, None
