"""Pod status computation: container states, phase, conditions, QoS."""

from __future__ import annotations

from typing import Any

import pytest

from kybern.node.runtimes.base import EXITED, RUNNING, ContainerStatus
from kybern.node.status import ContainerView, container_status, pod_conditions, pod_phase, qos_class

NOW = "2024-01-01T00:00:00Z"


def cs(name: str, state: str, *, attempt: int = 0, code: int = 0, reason: str = "") -> ContainerStatus:
    return ContainerStatus(id=f"{name}-{attempt}", sandbox_id="s", name=name, attempt=attempt, state=state,
                           image="docker.io/library/demo:v1", image_ref="docker.io/library/demo@sha256:ab",
                           created_at=1.0, started_at=2.0, finished_at=3.0 if state == EXITED else 0.0,
                           exit_code=code, reason=reason or ("" if state == RUNNING else
                                                             "Completed" if code == 0 else "Error"))


def pod(policy: str = "Always", containers: int = 1, init: int = 0, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"restartPolicy": policy,
                     "containers": [{"name": f"c{i}", "image": "demo:v1"} for i in range(containers)],
                     "initContainers": [{"name": f"i{i}", "image": "demo:v1"} for i in range(init)], **spec},
            "status": {}}


def view(name: str, current: ContainerStatus | None = None, previous: ContainerStatus | None = None,
         waiting: str = "", msg: str = "") -> ContainerView:
    v = ContainerView(name, "demo:v1", "process", current, previous, waiting, msg)
    v.ready = v.running
    return v


def test_running_container_status() -> None:
    s = container_status(view("c0", cs("c0", RUNNING, attempt=2), cs("c0", EXITED, attempt=1, code=1)))
    assert s["state"] == {"running": {"startedAt": "1970-01-01T00:00:02Z"}}
    assert s["lastState"]["terminated"]["exitCode"] == 1
    assert s["lastState"]["terminated"]["reason"] == "Error"
    assert s["restartCount"] == 2 and s["ready"] and s["started"]
    assert s["containerID"] == "process://c0-2"
    assert s["image"] == "docker.io/library/demo:v1"
    assert s["imageID"] == "docker.io/library/demo@sha256:ab"


def test_crashloop_shows_the_exit_as_last_state() -> None:
    s = container_status(view("c0", cs("c0", EXITED, attempt=3, code=2), waiting="CrashLoopBackOff",
                              msg="back-off 40s restarting failed container=c0 pod=p_default(u)"))
    assert s["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert s["lastState"]["terminated"]["exitCode"] == 2
    # the kubelet keeps the latest container's ID while the next start backs off
    assert s["restartCount"] == 3 and not s["ready"] and s["containerID"] == "process://c0-3"


def test_image_pull_error_has_spec_image() -> None:
    v = ContainerView("c0", "nginx", "process", None, None, "ErrImagePull", "not in the local image store")
    s = container_status(v)
    assert s["state"]["waiting"] == {"reason": "ErrImagePull", "message": "not in the local image store"}
    assert s["image"] == "nginx" and s["imageID"] == "" and s["restartCount"] == 0


def statuses(*views: ContainerView) -> list[dict[str, Any]]:
    return [container_status(v) for v in views]


@pytest.mark.parametrize("policy, code, phase", [
    ("Always", 0, "Running"), ("Always", 1, "Running"),
    ("OnFailure", 0, "Succeeded"), ("OnFailure", 1, "Running"),
    ("Never", 0, "Succeeded"), ("Never", 1, "Failed"),
])
def test_phase_after_exit(policy: str, code: int, phase: str) -> None:
    restarting = policy == "Always" or (policy == "OnFailure" and code)
    v = view("c0", cs("c0", EXITED, code=code), waiting="CrashLoopBackOff" if restarting else "")
    assert pod_phase(pod(policy), [], statuses(v)) == phase


def test_phase_pending_and_running() -> None:
    p = pod()
    assert pod_phase(p, [], statuses(view("c0", waiting="ErrImagePull"))) == "Pending"
    assert pod_phase(p, [], statuses(view("c0", cs("c0", RUNNING)))) == "Running"
    assert pod_phase(pod(containers=2), [], statuses(view("c0", cs("c0", RUNNING)))) == "Pending"


def test_init_containers_gate_the_pod() -> None:
    p = pod(init=1)
    init = statuses(view("i0", cs("i0", RUNNING)))
    assert pod_phase(p, init, statuses(view("c0", waiting="PodInitializing"))) == "Pending"
    conds = {c["type"]: c for c in pod_conditions(p, "Pending", init, statuses(view("c0")),
                                                  sandbox_ready=True, now=NOW)}
    assert conds["Initialized"]["status"] == "False"
    assert conds["Initialized"]["reason"] == "ContainersNotInitialized"
    assert conds["Initialized"]["message"] == "containers with incomplete status: [i0]"
    failed = statuses(view("i0", cs("i0", EXITED, code=1)))
    assert pod_phase(pod("Never", init=1), failed, statuses(view("c0", waiting="PodInitializing"))) == "Failed"


def test_conditions_ready_and_not_ready() -> None:
    p = pod(containers=2)
    sts = statuses(view("c0", cs("c0", RUNNING)), view("c1", waiting="ContainerCreating"))
    conds = {c["type"]: c for c in pod_conditions(p, "Pending", [], sts, sandbox_ready=True, now=NOW)}
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "ContainersNotReady"
    assert conds["Ready"]["message"] == "containers with unready status: [c1]"
    assert conds["ContainersReady"]["status"] == "False"
    assert conds["Initialized"]["status"] == "True"
    assert conds["PodReadyToStartContainers"]["status"] == "True"
    assert conds["PodScheduled"]["status"] == "True"
    sts = statuses(view("c0", cs("c0", RUNNING)), view("c1", cs("c1", RUNNING)))
    conds = {c["type"]: c for c in pod_conditions(p, "Running", [], sts, sandbox_ready=True, now=NOW)}
    assert conds["Ready"]["status"] == "True" and "reason" not in conds["Ready"]


def test_condition_transition_times_are_kept() -> None:
    p = pod()
    p["status"]["conditions"] = [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2019-01-01T00:00:00Z"}]
    sts = statuses(view("c0", cs("c0", RUNNING)))
    conds = {c["type"]: c for c in pod_conditions(p, "Running", [], sts, sandbox_ready=True, now=NOW)}
    assert conds["Ready"]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert conds["ContainersReady"]["lastTransitionTime"] == NOW
    assert conds["PodScheduled"]["lastTransitionTime"] == "2019-01-01T00:00:00Z"


def test_completed_pods_are_not_ready() -> None:
    p = pod("Never")
    sts = statuses(view("c0", cs("c0", EXITED)))
    conds = {c["type"]: c for c in pod_conditions(p, "Succeeded", [], sts, sandbox_ready=True, now=NOW)}
    assert conds["Ready"]["reason"] == "PodCompleted"
    assert conds["Initialized"]["reason"] == "PodCompleted" and conds["Initialized"]["status"] == "True"


def _res(**r: dict[str, str]) -> dict[str, Any]:
    return {"resources": r}


@pytest.mark.parametrize("resources, qos", [
    ([{}], "BestEffort"),
    ([_res(requests={"cpu": "100m"})], "Burstable"),
    ([_res(limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
    ([_res(limits={"cpu": "1", "memory": "1Gi"}, requests={"cpu": "1000m", "memory": "1Gi"})], "Guaranteed"),
    ([_res(limits={"cpu": "1", "memory": "1Gi"}, requests={"cpu": "500m"})], "Burstable"),
    ([_res(limits={"cpu": "1", "memory": "1Gi"}), {}], "Burstable"),
    ([_res(requests={"ephemeral-storage": "1Gi"})], "BestEffort"),
])
def test_qos_class(resources: list[dict[str, Any]], qos: str) -> None:
    p = pod(containers=len(resources))
    for c, r in zip(p["spec"]["containers"], resources):
        c.update(r)
    assert qos_class(p) == qos


def test_readiness_gates_hold_ready_back() -> None:
    """GeneratePodReadyCondition: containers ready is not enough while a gate's
    condition is missing or not True."""
    p = pod()
    p["spec"]["readinessGates"] = [{"conditionType": "example.com/lb"}]
    sts = statuses(view("c0", cs("c0", RUNNING)))
    conds = {c["type"]: c for c in pod_conditions(p, "Running", [], sts, sandbox_ready=True, now=NOW)}
    assert conds["ContainersReady"]["status"] == "True"
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert conds["Ready"]["message"] == 'corresponding condition of pod readiness gate "example.com/lb" does not exist.'
    p["status"]["conditions"] = [{"type": "example.com/lb", "status": "False"}]
    conds = {c["type"]: c for c in pod_conditions(p, "Running", [], sts, sandbox_ready=True, now=NOW)}
    assert conds["Ready"]["message"] == 'the status of pod readiness gate "example.com/lb" is not "True", but False'
    p["status"]["conditions"] = [{"type": "example.com/lb", "status": "True"}]
    conds = {c["type"]: c for c in pod_conditions(p, "Running", [], sts, sandbox_ready=True, now=NOW)}
    assert conds["Ready"]["status"] == "True"


def test_container_statuses_list_the_volume_mounts() -> None:
    """RecursiveReadOnlyMounts (1.31+): each container status lists its mounts, a
    read-only one with recursiveReadOnly, also before the container exists."""
    from kybern.node.status import ContainerView, container_status

    v = ContainerView("c0", "demo:v1", volume_mounts=[
        {"name": "data", "mountPath": "/data"},
        {"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
         "readOnly": True}])
    assert container_status(v)["volumeMounts"] == [
        {"name": "data", "mountPath": "/data"},
        {"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
         "readOnly": True, "recursiveReadOnly": "Disabled"}]
    assert "volumeMounts" not in container_status(ContainerView("c1", "demo:v1"))
