"""What a pod's status says, computed from what the runtime reports: phase,
conditions, container statuses and QoS class, following the kubelet's rules
(pkg/kubelet/kubelet_pods.go getPhase, pkg/kubelet/status/generate.go,
pkg/apis/core/v1/helper/qos). Pure functions, easy to test; the one I/O is reading an
exited container's termination message, once.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kybern.node.quantity import parse_quantity
from kybern.node.runtimes.base import EXITED, RUNNING, ContainerStatus

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")


DEADLINE_REASON = "DeadlineExceeded"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


def active_deadline(pod: dict[str, Any]) -> float | None:
    """When the pod's `activeDeadlineSeconds` runs out (epoch seconds), counted from
    status.startTime as the kubelet's activeDeadlineHandler does; None without one."""
    secs = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    start = (pod.get("status") or {}).get("startTime")
    if secs is None or not start:
        return None
    try:
        t0 = _dt.datetime.fromisoformat(str(start)).timestamp()
    except ValueError:
        return None
    return t0 + float(secs)


def rfc3339(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerView:
    """Everything the status needs to know about one container of the spec."""

    name: str
    spec_image: str
    runtime_name: str = "process"
    current: ContainerStatus | None = None  # the latest instance
    previous: ContainerStatus | None = None  # the one before it (exited)
    waiting_reason: str = ""  # set when the agent holds the container back
    waiting_message: str = ""
    ready: bool = False
    started: bool | None = None  # startup probe passed (None: as `running`)
    # the waiting reason before the runtime has a container: the kubelet's default is
    # PodInitializing for every container of a pod with init containers, else ContainerCreating
    default_waiting: str = "ContainerCreating"
    # the spec's volumeMounts, reported back in the status (RecursiveReadOnlyMounts, on
    # since 1.31: every container status lists them, also while waiting)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.state == RUNNING

    @property
    def exited(self) -> bool:
        return self.current is not None and self.current.state == EXITED


TERMINATION_SUFFIX = ".termination-log"  # beside the container's log: <attempt>.termination-log
FALLBACK_SUFFIX = ".termination-fallback"  # marker: terminationMessagePolicy FallbackToLogsOnError
MAX_MESSAGE_BYTES = 4096  # the kubelet's MaxContainerTerminationMessageLength
MAX_LOG_LINES, MAX_LOG_BYTES = 80, 2048  # ...MessageLogLines and ...MessageLogLength
_messages: dict[str, str] = {}  # container id -> its termination message (read once, after it exited)


def termination_message(cs: ContainerStatus) -> str:
    """What an exited container wrote to its terminationMessagePath (at most 4 KiB),
    or with FallbackToLogsOnError and a failure, the tail of its log (80 lines, 2 KiB):
    the kubelet's rules. Read once per container (the only I/O of this module)."""
    if cs.id in _messages or not cs.log_path.endswith(".log"):
        return _messages.get(cs.id, "")
    base = cs.log_path[:-len(".log")]
    text = ""
    try:
        with open(base + TERMINATION_SUFFIX, "rb") as f:
            text = f.read(MAX_MESSAGE_BYTES).decode(errors="replace")
    except OSError:
        pass
    if not text and cs.exit_code != 0 and os.path.exists(base + FALLBACK_SUFFIX):
        text = _log_tail(cs.log_path)
    if len(_messages) > 4096:
        _messages.clear()
    _messages[cs.id] = text
    return text


def _log_tail(path: str) -> str:
    from kybern.node.logs import parse_record

    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            lines = f.read().splitlines(keepends=True)
    except OSError:
        return ""
    out = b""
    for line in lines:
        rec = parse_record(line)
        if rec is not None:
            out += rec.content + (b"\n" if rec.full else b"")
    out = b"".join(out.splitlines(keepends=True)[-MAX_LOG_LINES:])
    return out[-MAX_LOG_BYTES:].decode(errors="replace")


def terminated_state(cs: ContainerStatus, runtime_name: str) -> dict[str, Any]:
    t: dict[str, Any] = {"exitCode": cs.exit_code, "reason": cs.reason or ("Completed" if cs.exit_code == 0
                                                                          else "Error")}
    # the runtime's message, enriched with what the application wrote (kuberuntime's rule)
    message = ": ".join(m for m in (cs.message, termination_message(cs)) if m)
    if message:
        t["message"] = message
    # never null: the kubelet converts the runtime's times, 0 for a container that never
    # started (StartError), to 1970-01-01T00:00:00Z
    t["startedAt"] = rfc3339(cs.started_at or 0)
    t["finishedAt"] = rfc3339(cs.finished_at or 0)
    t["containerID"] = f"{runtime_name}://{cs.id}"
    return {"terminated": t}


def container_status(v: ContainerView) -> dict[str, Any]:
    """One entry of status.containerStatuses / initContainerStatuses."""
    cur, prev = v.current, v.previous
    out: dict[str, Any] = {"name": v.name}
    last: dict[str, Any] = {}
    if v.running:
        assert cur is not None
        state: dict[str, Any] = {"running": {"startedAt": rfc3339(cur.started_at)}}
        if prev is not None:
            last = terminated_state(prev, v.runtime_name)
    elif v.waiting_reason or cur is None:
        w: dict[str, Any] = {"reason": v.waiting_reason or v.default_waiting}
        if v.waiting_message:
            w["message"] = v.waiting_message
        state = {"waiting": w}
        if cur is not None and cur.state == EXITED:
            last = terminated_state(cur, v.runtime_name)
        elif prev is not None:
            last = terminated_state(prev, v.runtime_name)
    elif cur.state == EXITED:
        state = terminated_state(cur, v.runtime_name)
        if prev is not None:
            last = terminated_state(prev, v.runtime_name)
    else:  # created, not started yet
        state = {"waiting": {"reason": v.default_waiting}}
    out["state"] = state
    out["lastState"] = last
    out["ready"] = bool(v.ready and v.running)
    out["restartCount"] = cur.attempt if cur is not None else 0
    out["image"] = cur.image if cur is not None else v.spec_image
    out["imageID"] = cur.image_ref if cur is not None else ""
    if cur is not None:  # the latest container's, also while it waits to restart (CrashLoopBackOff), as the kubelet
        out["containerID"] = f"{v.runtime_name}://{cur.id}"
    out["started"] = v.running if v.started is None else bool(v.started and v.running)
    if v.volume_mounts:
        out["volumeMounts"] = [volume_mount_status(m) for m in v.volume_mounts]
    return out


def volume_mount_status(m: dict[str, Any]) -> dict[str, Any]:
    """A VolumeMountStatus: name, path, readOnly and, for a read-only mount,
    recursiveReadOnly (Enabled only when asked for; IfPossible is Disabled here, as on
    a runtime without recursive read-only mounts)."""
    out: dict[str, Any] = {"name": m.get("name", ""), "mountPath": m.get("mountPath", "")}
    if m.get("readOnly"):
        out["readOnly"] = True
        out["recursiveReadOnly"] = "Enabled" if m.get("recursiveReadOnly") == "Enabled" else "Disabled"
    return out


def _terminated_of(st: dict[str, Any], key: str) -> dict[str, Any] | None:
    return (st.get(key) or {}).get("terminated")


def is_sidecar(container: dict[str, Any]) -> bool:
    """A restartable init container (`restartPolicy: Always`): a sidecar."""
    return container.get("restartPolicy") == "Always"


def any_regular_container_started(pod: dict[str, Any], statuses: list[dict[str, Any]]) -> bool:
    """kubecontainer.HasAnyRegularContainerStarted: a container of spec.containers
    is running, has terminated or is waiting after having run."""
    names = {c["name"] for c in pod.get("spec", {}).get("containers") or []}
    for s in statuses:
        if s["name"] not in names:
            continue
        state = s.get("state", {})
        if "running" in state or "terminated" in state or \
                ("waiting" in state and _terminated_of(s, "lastState") is not None):
            return True
    return False


def pod_phase(pod: dict[str, Any], init_statuses: list[dict[str, Any]],
              statuses: list[dict[str, Any]]) -> str:
    """The kubelet's getPhase (1.32), sidecars (restartable init containers) included:
    a sidecar that is not started yet keeps the pod Pending, a running one counts as
    running, a terminated one does not count."""
    spec = pod.get("spec", {})
    policy = spec.get("restartPolicy", "Always")
    pending_init = failed_init = 0
    unknown = running = waiting = stopped = succeeded = 0
    by_name = {s["name"]: s for s in init_statuses}
    for c in spec.get("initContainers") or []:
        s = by_name.get(c["name"])
        if is_sidecar(c):
            if s is None:
                unknown += 1
                continue
            state = s.get("state", {})
            if "running" in state:
                if not s.get("started"):
                    pending_init += 1
                running += 1
            elif "terminated" in state:
                pass
            elif "waiting" in state:
                if _terminated_of(s, "lastState") is None:
                    pending_init += 1
                    waiting += 1
            else:
                pending_init += 1
                unknown += 1
            continue
        if s is None:
            pending_init += 1
            continue
        state = s.get("state", {})
        if "running" in state:
            pending_init += 1
        elif "terminated" in state:
            if state["terminated"].get("exitCode", 0) != 0:
                failed_init += 1
        elif "waiting" in state:
            last = _terminated_of(s, "lastState")
            if last is not None:
                if last.get("exitCode", 0) != 0:
                    failed_init += 1
            else:
                pending_init += 1
        else:
            pending_init += 1

    by_name = {s["name"]: s for s in statuses}
    for c in spec.get("containers") or []:
        s = by_name.get(c["name"])
        if s is None:
            unknown += 1
            continue
        state = s.get("state", {})
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode", 0) == 0:
                succeeded += 1
        elif "waiting" in state:
            if _terminated_of(s, "lastState") is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1

    if failed_init and policy == "Never":
        return "Failed"
    if (pending_init and not any_regular_container_started(pod, statuses)) or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def pod_conditions(pod: dict[str, Any], phase: str, init_statuses: list[dict[str, Any]],
                   statuses: list[dict[str, Any]], *, sandbox_ready: bool, now: str) -> list[dict[str, Any]]:
    """Conditions the kubelet owns, merged with the ones it does not (PodScheduled,
    DisruptionTarget, readiness gates), keeping lastTransitionTime when a
    condition's status does not change."""
    spec = pod.get("spec", {})
    old = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}

    # Initialized (status.GeneratePodInitializedCondition): every init container has
    # succeeded and every sidecar has started; once a regular container has run the
    # pod stays initialized (a restarting sidecar does not undo it)
    by_init = {s["name"]: s for s in init_statuses}
    unknown_init, incomplete = [], []
    for c in spec.get("initContainers") or []:
        s = by_init.get(c["name"])
        if s is None:
            unknown_init.append(c["name"])
        elif is_sidecar(c):
            if not s.get("started"):
                incomplete.append(c["name"])
        elif (s.get("state", {}).get("terminated") or {}).get("exitCode", 1) != 0:
            incomplete.append(c["name"])
    # ContainersReady/Ready: the sidecars and the containers (GenerateContainersReadyCondition)
    ready_of = {s["name"]: bool(s.get("ready")) for s in [*init_statuses, *statuses]}
    unready = [c["name"] for c in [*(c for c in spec.get("initContainers") or [] if is_sidecar(c)),
                                   *(spec.get("containers") or [])] if not ready_of.get(c["name"], False)]

    mine: list[tuple[str, bool, str, str]] = []
    # a finished pod's sandbox is torn down by the kubelet: False from then on
    mine.append(("PodReadyToStartContainers", sandbox_ready and phase not in ("Succeeded", "Failed"), "", ""))
    if phase == "Succeeded" and not unknown_init:
        mine.append(("Initialized", True, "PodCompleted", ""))
    elif any_regular_container_started(pod, statuses):
        mine.append(("Initialized", True, "", ""))
    elif unknown_init or incomplete:
        parts = []
        if unknown_init:
            parts.append(f"containers with unknown status: [{' '.join(unknown_init)}]")
        if incomplete:
            parts.append(f"containers with incomplete status: [{' '.join(incomplete)}]")
        mine.append(("Initialized", False, "ContainersNotInitialized", ", ".join(parts)))
    else:
        mine.append(("Initialized", True, "", ""))
    if phase in ("Succeeded", "Failed"):
        reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
        mine.append(("Ready", False, reason, ""))
        mine.append(("ContainersReady", False, reason, ""))
    elif unready:
        msg = f"containers with unready status: [{' '.join(unready)}]"
        mine.append(("Ready", False, "ContainersNotReady", msg))
        mine.append(("ContainersReady", False, "ContainersNotReady", msg))
    else:
        # readiness gates (GeneratePodReadyCondition): each named condition must be True
        gates = []
        for g in spec.get("readinessGates") or []:
            typ = g.get("conditionType", "")
            c = old.get(typ)
            if c is None:
                gates.append(f'corresponding condition of pod readiness gate "{typ}" does not exist.')
            elif c.get("status") != "True":
                gates.append(f'the status of pod readiness gate "{typ}" is not "True", but {c.get("status")}')
        if gates:
            mine.append(("Ready", False, "ReadinessGatesNotReady", ", ".join(gates)))
        else:
            mine.append(("Ready", True, "", ""))
        mine.append(("ContainersReady", True, "", ""))

    out: list[dict[str, Any]] = []
    for typ, ok, reason, message in mine:
        status = "True" if ok else "False"
        prev = old.get(typ)
        cond: dict[str, Any] = {"type": typ, "status": status, "lastProbeTime": None,
                                "lastTransitionTime": prev["lastTransitionTime"]
                                if prev and prev.get("status") == status and prev.get("lastTransitionTime")
                                else now}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        out.append(cond)
    for typ, c in old.items():
        if typ not in KUBELET_CONDITIONS:
            out.append(c)
    if "PodScheduled" not in old:
        out.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                    "lastTransitionTime": now})
    return out


_QOS_RESOURCES = ("cpu", "memory")


def qos_class(pod: dict[str, Any]) -> str:
    """BestEffort, Burstable or Guaranteed, as pkg/apis/core/v1/helper/qos.GetPodQOS."""
    spec = pod.get("spec", {})
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        lim = res.get("limits") or {}
        # apiserver defaulting copies limits into unset requests; do it here too
        req = {**{k: v for k, v in lim.items()}, **(res.get("requests") or {})}
        for name, q in req.items():
            if name in _QOS_RESOURCES and _q(q) > 0:
                requests[name] = requests.get(name, Decimal(0)) + _q(q)
        found = set()
        for name, q in lim.items():
            if name in _QOS_RESOURCES and _q(q) > 0:
                found.add(name)
                limits[name] = limits.get(name, Decimal(0)) + _q(q)
        if not set(_QOS_RESOURCES) <= found:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed:
        for name, q in requests.items():
            if limits.get(name) != q:
                guaranteed = False
                break
    if guaranteed and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def _q(v: Any) -> Decimal:
    try:
        return parse_quantity(v)
    except ValueError:
        return Decimal(0)
