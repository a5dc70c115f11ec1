"""One pod on this node: how its containers are started, restarted, stopped and
reported. The kubelet's pod worker, reduced to its essentials.

A worker owns one pod (by UID). Anything that may matter — a new version of the
pod from the watch, a container exiting, a back-off expiring — wakes it, and
`sync()` then looks at the desired state (the pod) and the observed state (the
runtime's containers), acts, and writes the status. It is level-triggered:
running it twice in a row does nothing the second time.

Order of business in a sync:
  pod gone from the API  -> kill everything, clean up, finish
  pod being deleted      -> stop containers (grace period), write the final
                            status, delete the pod with gracePeriodSeconds=0
  pod terminal           -> nothing runs again
  otherwise              -> sandbox, volumes (volumes.py; a volume that cannot
                            be set up keeps the pod ContainerCreating), kill
                            containers whose liveness/startup probe failed
                            (probes.py), then init containers one at a time,
                            then the containers; restart per restartPolicy with
                            CrashLoopBackOff; write status if it changed

Containers are stopped through hooks.stop: preStop hook, SIGTERM, grace period,
SIGKILL of the whole tree.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from typing import TYPE_CHECKING, Any

from kybern.client.resources import PODS
from kybern.machinery import errors, meta
from kybern.node import hooks
from kybern.node import status as st
from kybern.node.containers import ContainerStarter
from kybern.node.images import InvalidReference, normalize
from kybern.node.probes import ProbeManager, probed_containers
from kybern.node.runtimes import cgroups
from kybern.node.runtimes.base import (
    CREATED,
    EXITED,
    RUNNING,
    ContainerError,
    ContainerStatus,
    PodSandboxConfig,
)
from kybern.node.volumes import VolumeManager

if TYPE_CHECKING:
    from kybern.node.agent import NodeAgent

log = logging.getLogger(__name__)

FORCE_DELETE_GRACE = 2.0  # kubelet's minimum grace when the pod vanished (force delete)
POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"


class LogTargetError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PodWorker:
    def __init__(self, agent: NodeAgent, pod: dict[str, Any]) -> None:
        self.agent = agent
        self.pod: dict[str, Any] | None = pod
        m = pod["metadata"]
        self.uid: str = m["uid"]
        self.namespace: str = m.get("namespace", "default")
        self.name: str = m["name"]
        self.sandbox_id: str | None = None
        self.sandbox_ip = agent.address
        self.sandbox_netns = ""  # the pod's network namespace (port-forward dials inside it)
        self.views: dict[str, st.ContainerView] = {}
        self.starter = ContainerStarter(agent, self)
        self.probes = ProbeManager(self)
        self.volumes = VolumeManager(self)
        self.done = False
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._last_status: dict[str, Any] | None = None
        self._writing: dict[str, Any] | None = None  # the status a PATCH in flight writes
        self._terminal = False
        self._sidecars_stopped = False  # the pod's containers are done: sidecars stay stopped
        self._respec: set[str] = set()  # killed for a new image: started again whatever the restartPolicy
        self.task: asyncio.Task[None] | None = None
        self._syncing = False
        self._first_seen: float | None = time.monotonic()  # until it runs (kubelet_pod_start_duration_seconds)

    @property
    def active(self) -> bool:
        """Counts against the node's max pods: not finished, not terminal."""
        return not self.done and not self._terminal and self.pod is not None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def pod_ref(self) -> str:
        """pod_namespace(uid), as the kubelet names pods in messages."""
        return f"{self.name}_{self.namespace}({self.uid})"

    # -- driving ------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod-worker-{self.key}")
        self.wake()

    def update(self, pod: dict[str, Any] | None) -> None:
        prev, self.pod = self.pod, pod
        if prev is not None and pod is not None and self._echo_of_own_status(prev, pod):
            return  # our own status write coming back: nothing new to act on
        self.wake()

    def _echo_of_own_status(self, prev: dict[str, Any], pod: dict[str, Any]) -> bool:
        """True if `pod` differs from `prev` only by the status this worker last
        wrote (and the resourceVersion and managedFields that write moved)."""
        if pod.get("spec") != prev.get("spec"):
            return False
        # the watch can deliver our write before its answer arrives: the status being
        # written counts as ours too (else a burst syncs every pod twice)
        status = pod.get("status") or {}
        if not any(s is not None and _same_status(status, s) for s in (self._last_status, self._writing)):
            return False
        a, b = prev.get("metadata") or {}, pod.get("metadata") or {}
        skip = ("resourceVersion", "managedFields")
        return len(a) == len(b) and all(k in skip or a.get(k) == v for k, v in b.items())

    def wake(self) -> None:
        self._wake.set()

    def container_changed(self, state: str) -> None:
        """A container of this pod changed state (the runtime's event). A container
        that started running during a sync was started by that sync, whose last
        refresh() reports it: no second sync for it. Anything else (an exit) wakes."""
        if not (self._syncing and state == RUNNING):
            self.wake()

    def wake_at(self, when: float) -> None:
        """Wake at wall-clock time `when` (keeps only the earliest pending wake)."""
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - time.time())
        if self._timer is not None and self._timer.when() <= loop.time() + delay:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.wake()

    async def _run(self) -> None:
        while not self.done:
            await self._wake.wait()
            self._wake.clear()
            self._syncing = True
            try:
                async with self.agent.sync_slots.slot():
                    await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("sync of pod %s failed: %r", self.key, e, exc_info=True)
                self.wake_at(time.time() + 1.0)
            finally:
                self._syncing = False
        if self._timer is not None:
            self._timer.cancel()
        self.agent.worker_finished(self)

    # -- the sync -----------------------------------------------------------
    async def sync(self) -> None:
        pod = self.pod
        if pod is None:
            await self.kill_all(FORCE_DELETE_GRACE)
            await self.cleanup()
            self.done = True
            return
        if meta.is_deleting(pod):
            await self._terminate_and_delete(pod)
            return
        phase = (pod.get("status") or {}).get("phase")
        if self._terminal or phase in ("Succeeded", "Failed"):
            self._terminal = True
            self.probes.stop()
            await self.kill_all(self.grace(pod))
            await self.refresh()  # keeps `kubectl logs` of finished pods working
            return
        deadline = st.active_deadline({"spec": pod.get("spec") or {},
                                       "status": self._last_status or pod.get("status") or {}})
        if deadline is not None and time.time() >= deadline:
            await self._deadline_exceeded(pod)
            return
        await self._ensure_sandbox(pod)
        await self.refresh()
        mounted, vol_wake = await self.volumes.setup(pod)
        if await self._kill_unhealthy(pod) | await self._kill_changed(pod):
            await self.refresh()
        if mounted and self._exit_unreported():
            # as the kubelet's syncPod, which writes the status it found before acting: a
            # container that exited shows `Error`/`Completed` before it is restarted
            await self._write_status(self.compute_status(pod))
        wake = await self._reconcile_containers(pod) if mounted else None
        self.probes.sync(pod, self._running_instance)
        await self.refresh()
        new = self.compute_status(pod)
        await self._write_status(new)
        if self._first_seen is not None and new["phase"] == "Running":
            self.agent.metrics.pod_started(time.monotonic() - self._first_seen)
            self._first_seen = None
        if new["phase"] in ("Succeeded", "Failed"):
            self._terminal = True
        deadline = st.active_deadline({"spec": pod.get("spec") or {}, "status": new})
        wake = min((w for w in (wake, vol_wake, deadline) if w is not None), default=None)
        if wake is not None:
            self.wake_at(wake)

    async def _deadline_exceeded(self, pod: dict[str, Any]) -> None:
        """spec.activeDeadlineSeconds ran out (the kubelet's activeDeadlineHandler): a
        DeadlineExceeded event, the containers stopped, the pod Failed with that reason."""
        self.agent.recorder.event(pod, "Normal", st.DEADLINE_REASON, st.DEADLINE_MESSAGE)
        self.probes.stop()
        await self.kill_all(self.grace(pod))
        await self.refresh()
        new = self.compute_status(pod, terminal=True)
        new["phase"], new["reason"], new["message"] = "Failed", st.DEADLINE_REASON, st.DEADLINE_MESSAGE
        new["conditions"] = st.pod_conditions(pod, "Failed", new.get("initContainerStatuses") or [],
                                              new["containerStatuses"], sandbox_ready=False, now=meta.now())
        await self._write_status(new)
        self._terminal = True

    async def _terminate_and_delete(self, pod: dict[str, Any]) -> None:
        self.probes.stop()
        await self.kill_all(self.grace(pod))
        if self.sandbox_id is not None:
            await self.refresh()
            try:
                await self._write_status(self.compute_status(pod, terminal=True))
            except errors.StatusError as e:
                log.debug("final status of %s not written: %s", self.key, e)
        try:
            await self.agent.client.delete(PODS, self.name, self.namespace, grace_period_seconds=0,
                                           preconditions={"uid": self.uid})
        except errors.StatusError as e:
            if e.code not in (404, 409):
                raise
        await self.cleanup()
        self.done = True

    def grace(self, pod: dict[str, Any]) -> float:
        """The deletion's grace period when the pod is being deleted (`kubectl delete
        --grace-period=N` sets it, longer or shorter than the spec's), else the spec's,
        as the kubelet's killPod."""
        del_grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if del_grace is not None:
            return float(del_grace)
        spec_grace = pod.get("spec", {}).get("terminationGracePeriodSeconds")
        return float(spec_grace) if spec_grace is not None else 30.0

    async def _ensure_sandbox(self, pod: dict[str, Any]) -> None:
        rt = self.agent.runtime
        if self.sandbox_id is not None and await rt.pod_sandbox_status(self.sandbox_id) is not None:
            return
        for sb in await rt.list_pod_sandboxes():  # left by a previous run of the agent
            if sb.uid == self.uid and sb.ready:
                self.sandbox_id, self.sandbox_ip, self.sandbox_netns = sb.id, sb.ip, sb.netns
                return
        cfg = self.sandbox_config(pod)
        try:
            self.sandbox_id = await rt.run_pod_sandbox(cfg)
        except ContainerError as e:  # e.g. CNI ADD failed: the kubelet's event, then retry
            self.agent.recorder.event(pod, "Warning", "FailedCreatePodSandBox", e.message)
            raise
        status = await rt.pod_sandbox_status(self.sandbox_id)
        self.sandbox_ip = status.ip if status else self.agent.address
        self.sandbox_netns = status.netns if status else ""

    def sandbox_config(self, pod: dict[str, Any]) -> PodSandboxConfig:
        m = pod["metadata"]
        return PodSandboxConfig(
            name=self.name, namespace=self.namespace, uid=self.uid,
            hostname=pod["spec"].get("hostname") or self.name,
            log_directory=self.log_directory(),
            labels=dict(m.get("labels") or {}), annotations=dict(m.get("annotations") or {}),
            host_network=bool(pod["spec"].get("hostNetwork")),
            port_mappings=[{"hostPort": p["hostPort"], "containerPort": p["containerPort"],
                            "protocol": p.get("protocol", "TCP").lower()}
                           for c in pod["spec"].get("containers") or [] for p in c.get("ports") or []
                           if p.get("hostPort")],
            cgroup_parent=cgroups.cgroup_parent(st.qos_class(pod), self.uid),
            resources=cgroups.pod_resources(pod))

    def container_event(self, container: str, type_: str, reason: str, message: str) -> None:
        """An event about one container of the pod: as the kubelet's, its
        involvedObject.fieldPath names the container (spec.containers{name}), so
        two containers' identical messages stay two events."""
        pod = self.pod
        if pod is None:
            return
        spec = pod.get("spec") or {}
        kind = next((k for k in ("initContainers", "ephemeralContainers")
                     if any(c.get("name") == container for c in spec.get(k) or [])), "containers")
        path = f"spec.{kind}{{{container}}}" if container else ""
        self.agent.recorder.event(pod, type_, reason, message, field_path=path)

    def log_directory(self) -> str:
        return os.path.join(self.agent.data_dir, "pods", f"{self.namespace}_{self.name}_{self.uid}")

    async def refresh(self) -> None:
        """Rebuild the per-container view from what the runtime reports, and drop
        all but the last two instances of each container (the current one and
        the one `kubectl logs --previous` shows)."""
        pod = self.pod
        if self.sandbox_id is None:
            return
        spec = (pod or {}).get("spec", {})
        runtime_name = self.agent.runtime.name
        # the kubelet's default waiting reason: PodInitializing in a pod with init containers
        default_waiting = "PodInitializing" if spec.get("initContainers") else "ContainerCreating"
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []) + \
                (spec.get("ephemeralContainers") or []):
            v = self.views.get(c["name"])
            if v is None:
                v = self.views[c["name"]] = st.ContainerView(c["name"], c.get("image", ""), runtime_name)
            else:
                v.spec_image = c.get("image", "")
            v.default_waiting = default_waiting
            v.volume_mounts = c.get("volumeMounts") or []  # listed back in the status, as 1.31+
        by_name: dict[str, list[Any]] = {}
        for cs in await self.agent.runtime.list_containers(self.sandbox_id):
            by_name.setdefault(cs.labels.get(CONTAINER_NAME_LABEL, cs.name), []).append(cs)
        for name, v in self.views.items():
            items = sorted(by_name.get(name, []), key=lambda c: (c.attempt, c.created_at))
            v.current = items[-1] if items else None
            v.previous = items[-2] if len(items) > 1 else None
            cid = v.current.id if v.current is not None else ""
            v.started = v.running and self.probes.started(name, cid)
            v.ready = v.running and self.probes.ready(name, cid)
            for old in items[:-2]:
                await self.agent.runtime.remove_container(old.id)

    def _exit_unreported(self) -> bool:
        """A container the last written status showed running has exited since."""
        last = self._last_status or {}
        running = {s["name"] for s in [*(last.get("initContainerStatuses") or []),
                                       *(last.get("containerStatuses") or [])] if "running" in s["state"]}
        return any(v.exited and name in running for name, v in self.views.items())

    def _running_instance(self, name: str) -> ContainerStatus | None:
        v = self.views.get(name)
        return v.current if v is not None and v.running else None

    async def _kill_unhealthy(self, pod: dict[str, Any]) -> bool:
        """Kill the containers a liveness or startup probe has given up on."""
        policy = pod["spec"].get("restartPolicy", "Always")
        victims = []
        for c in probed_containers(pod["spec"]):
            cur = self._running_instance(c["name"])
            which = self.probes.failed(c["name"], cur.id) if cur is not None else None
            if cur is None or which is None:
                continue
            msg = f"Container {c['name']} failed {which} probe"
            if policy != "Never" or st.is_sidecar(c):
                msg += ", will be restarted"
            grace = self.probes.probe_grace(c["name"], cur.id, which)
            victims.append(hooks.stop(self, c, cur.id, grace if grace is not None else self.grace(pod), msg))
        await asyncio.gather(*victims)
        return bool(victims)

    async def _kill_changed(self, pod: dict[str, Any]) -> bool:
        """Kill the running containers whose image the spec no longer names (`kubectl set
        image` on a pod: the one container field a pod update may change), as the kubelet
        does when a container's hash changes; each starts again at once (a new hash has
        no crash back-off), whatever the restartPolicy."""
        spec = pod["spec"]
        victims = []
        for c in [*(i for i in spec.get("initContainers") or [] if st.is_sidecar(i)), *(spec.get("containers") or [])]:
            cur = self._running_instance(c["name"])
            if cur is None or cur.image == _normalized(c.get("image", "")):
                continue
            self.starter.crash.reset(c["name"])
            self._respec.add(c["name"])
            victims.append(hooks.stop(self, c, cur.id, self.grace(pod),
                                      f"Container {c['name']} definition changed, will be restarted"))
        await asyncio.gather(*victims)
        return bool(victims)

    async def _reconcile_containers(self, pod: dict[str, Any]) -> float | None:
        """Start, restart or leave alone each container. Returns when to look again."""
        spec = pod["spec"]
        policy = spec.get("restartPolicy", "Always")
        wakes: list[float] = []

        # once a regular container has run, the pod has been initialised: a sidecar that
        # exits then is restarted beside the containers, it does not hold them back
        initialized = any(self.views[c["name"]].current is not None for c in spec.get("containers") or [])
        for c in spec.get("initContainers") or []:
            v = self.views[c["name"]]
            cur = v.current
            if st.is_sidecar(c):  # restartPolicy: Always, whatever the pod's
                if self._sidecars_stopped:
                    continue
                w = await self._advance(pod, c, v, restart=True)
                if w is not None:
                    wakes.append(w)
                if initialized or (v.running and v.started is not False):
                    continue  # the next init container starts once this one has started
                break
            if initialized:
                continue
            if v.running:
                break
            if cur is not None and cur.state == EXITED and cur.exit_code == 0:
                v.waiting_reason = v.waiting_message = ""
                continue
            if cur is not None and cur.state == EXITED:
                if policy == "Never":
                    v.waiting_reason = v.waiting_message = ""
                    break
                w = await self.starter.restart(pod, c, v)
            elif cur is not None and cur.state == CREATED:
                w = await self.starter.start_created(pod, c, v)
            else:
                w = await self.starter.start(pod, c, v, attempt=0)
            if w is not None:
                wakes.append(w)
            break
        else:
            for c in spec.get("containers") or []:
                v = self.views[c["name"]]
                cur = v.current
                w = await self._advance(pod, c, v, restart=policy == "Always" or (
                    policy == "OnFailure" and cur is not None and cur.exit_code != 0))
                if w is not None:
                    wakes.append(w)
            await self._stop_sidecars_when_done(pod)
            for c in spec.get("ephemeralContainers") or []:  # started once, never restarted (kubectl debug)
                # (an image it cannot pull is retried with back-off, as any container's)
                w = await self._advance(pod, c, self.views[c["name"]], restart=False)
                if w is not None:
                    wakes.append(w)
            return min(wakes) if wakes else None

        for c in spec.get("containers") or []:  # still initialising
            v = self.views[c["name"]]
            if v.current is None:
                v.waiting_reason, v.waiting_message = "PodInitializing", ""
        return min(wakes) if wakes else None

    async def _advance(self, pod: dict[str, Any], c: dict[str, Any], v: st.ContainerView, *,
                       restart: bool) -> float | None:
        """Start `c` when it has no instance yet, start its created one, restart its
        exited one if `restart`; else leave it (running, or finished for good).
        Returns when to look again."""
        cur = v.current
        if c["name"] in self._respec and not v.running:
            restart = True
            self._respec.discard(c["name"])
        if v.running:
            v.waiting_reason = v.waiting_message = ""
        elif cur is None:
            return await self.starter.start(pod, c, v, attempt=0)
        elif cur.state == CREATED:
            return await self.starter.start_created(pod, c, v)
        elif cur.state == EXITED and restart:
            return await self.starter.restart(pod, c, v)
        else:
            v.waiting_reason = v.waiting_message = ""
        return None

    async def _stop_sidecars_when_done(self, pod: dict[str, Any]) -> None:
        """When every container has finished and none will restart (restartPolicy
        Never, or OnFailure with all succeeded), the kubelet stops the sidecars (last
        first) so the pod can complete; they are not restarted after that."""
        spec = pod["spec"]
        policy = spec.get("restartPolicy", "Always")
        sidecars = [c for c in spec.get("initContainers") or [] if st.is_sidecar(c)]
        if policy == "Always" or not sidecars or self._sidecars_stopped:
            return
        for c in spec.get("containers") or []:
            cur = self.views[c["name"]].current
            if cur is None or cur.state != EXITED or (policy == "OnFailure" and cur.exit_code != 0):
                return
        self._sidecars_stopped = True
        for c in reversed(sidecars):
            cur = self._running_instance(c["name"])
            if cur is not None:
                await hooks.stop(self, c, cur.id, self.grace(pod), f"Stopping container {c['name']}")

    async def kill_all(self, grace: float) -> None:
        if self.sandbox_id is None:
            for sb in await self.agent.runtime.list_pod_sandboxes():
                if sb.uid == self.uid:
                    self.sandbox_id = sb.id
        if self.sandbox_id is None:
            return
        running = [cs for cs in await self.agent.runtime.list_containers(self.sandbox_id)
                   if cs.state == RUNNING]
        spec = (self.pod or {}).get("spec") or {}
        specs = {c["name"]: c for c in (spec.get("initContainers") or []) + (spec.get("containers") or []) +
                 (spec.get("ephemeralContainers") or [])}
        await asyncio.gather(*(hooks.stop(self, specs.get(cs.name), cs.id, grace, f"Stopping container {cs.name}")
                               for cs in running))

    async def cleanup(self) -> None:
        """Forget the pod on this node: probes, sandbox, containers, logs, volumes."""
        self.probes.stop()
        self.volumes.cleanup()
        rt = self.agent.runtime
        for sb in await rt.list_pod_sandboxes():
            if sb.uid == self.uid:
                await rt.stop_pod_sandbox(sb.id)
                await rt.remove_pod_sandbox(sb.id)
        await asyncio.to_thread(shutil.rmtree, self.log_directory(), True)

    # -- status -------------------------------------------------------------
    def compute_status(self, pod: dict[str, Any], *, terminal: bool = False) -> dict[str, Any]:
        spec = pod.get("spec", {})
        old = pod.get("status") or {}
        now = meta.now()
        init = [st.container_status(self.views[c["name"]]) for c in spec.get("initContainers") or []
                if c["name"] in self.views]
        sidecars = {c["name"] for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"}
        for s in init:  # an init container is ready once it has succeeded (the prober manager's rule)
            if s["name"] not in sidecars:
                s["ready"] = (s["state"].get("terminated") or {}).get("exitCode") == 0
        main = sorted((st.container_status(self.views[c["name"]]) for c in spec.get("containers") or []
                       if c["name"] in self.views), key=lambda s: s["name"])
        phase = st.pod_phase(pod, init, main)
        if terminal and not any("running" in s["state"] for s in main):
            ok = all((s["state"].get("terminated") or {}).get("exitCode", 1) == 0 for s in main)
            phase = "Succeeded" if ok and main else "Failed"
        conditions = st.pod_conditions(pod, phase, init, main, sandbox_ready=self.sandbox_id is not None,
                                       now=now)
        host_ip = self.agent.address
        out: dict[str, Any] = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": self.sandbox_ip,
            "podIPs": [{"ip": self.sandbox_ip}],
            "startTime": old.get("startTime") or now,
            "qosClass": st.qos_class(pod),
            "containerStatuses": main,
        }
        if init:
            out["initContainerStatuses"] = init
        eph = [st.container_status(self.views[c["name"]]) for c in spec.get("ephemeralContainers") or []
               if c["name"] in self.views]
        for s in eph:
            s["ready"] = False  # ephemeral containers are never ready (they have no probes)
        if eph:
            out["ephemeralContainerStatuses"] = eph
        return out

    async def _write_status(self, new: dict[str, Any]) -> None:
        if _same_status(self._last_status, new):
            return
        old = (self.pod or {}).get("status") or {}
        if self._last_status is None and _same_status(old, new):
            self._last_status = new
            return
        body = dict(new)
        for k in old:  # merge patch: fields we no longer report must be cleared
            if k not in body and k not in ("nominatedNodeName", "resize", "resourceClaimStatuses"):
                body[k] = None
        self._writing = new
        try:
            await self.agent.client.patch(PODS, self.name, {"status": body}, self.namespace,
                                          subresource="status")
        finally:
            self._writing = None
        self._last_status = new

    # -- logs ---------------------------------------------------------------
    def log_target(self, container: str, previous: bool) -> tuple[str, Any]:
        """The log file `kubectl logs` should read, and a function telling whether
        that container has finished (so `-f` knows when to stop). Errors carry
        the kubelet's messages."""
        v = self.views.get(container)
        if v is None:
            raise LogTargetError(404, f'container "{container}" not found in pod "{self.name}"')
        s = st.container_status(v)
        state, last = s["state"], s.get("lastState") or {}
        want = None
        if previous:
            want = (last.get("terminated") or {}).get("containerID")
            if not want:
                raise LogTargetError(400, f'previous terminated container "{container}" in pod '
                                          f'"{self.name}" not found')
        elif "running" in state or "terminated" in state:
            want = s.get("containerID")
        elif "terminated" in last:
            want = last["terminated"].get("containerID")
        else:
            reason = (state.get("waiting") or {}).get("reason", "")
            detail = {"ErrImagePull": "image can't be pulled",
                      "ImagePullBackOff": "trying and failing to pull image"}.get(reason, reason)
            raise LogTargetError(400, f'container "{container}" in pod "{self.name}" is waiting to '
                                      f'start: {detail}')
        cid = str(want).split("://", 1)[-1]
        for cs in (v.current, v.previous):
            if cs is not None and cs.id == cid:
                return cs.log_path, (lambda cs=cs: cs.state == EXITED)
        raise LogTargetError(404, f'container "{container}" in pod "{self.name}" has no logs')


def _same_status(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Equal apart from timestamps that move on their own."""
    if a is None or b is None:
        return a is b
    def strip(s: dict[str, Any]) -> dict[str, Any]:
        out = dict(s)
        out["conditions"] = sorted(({k: v for k, v in c.items() if k not in ("lastTransitionTime",
                                                                             "lastProbeTime")}
                                    for c in s.get("conditions") or []), key=lambda c: c.get("type", ""))
        out.pop("startTime", None)
        return out
    return strip(a) == strip(b)


__all__ = ["CONTAINER_NAME_LABEL", "POD_UID_LABEL", "LogTargetError", "PodWorker"]


def _normalized(ref: str) -> str:
    """An image reference as the runtime records it (an unparsable one as it is)."""
    try:
        return normalize(ref)
    except InvalidReference:
        return ref
