"""The Job controller's rules that need no cluster: completion indexes and their
"1,3-5" notation, podFailurePolicy matching, conditions, the pod-recreation
backoff (upstream pkg/controller/job: indexed_job_utils.go, pod_failure_policy.go,
job_controller.go)."""

from __future__ import annotations

from typing import Any

from kybern.machinery import meta

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
INDEX_ENV = "JOB_COMPLETION_INDEX"

MSG_BACKOFF = "Job has reached the specified backoff limit"
MSG_DEADLINE = "Job was active longer than specified deadline"
MSG_COMPLETIONS = "Reached expected number of succeeded pods"

BACKOFF_BASE = 10.0   # DefaultJobPodFailureBackOff
BACKOFF_MAX = 360.0   # MaxJobPodFailureBackOff


def completion_index(pod: dict[str, Any]) -> int | None:
    m = pod.get("metadata") or {}
    raw = (m.get("annotations") or {}).get(INDEX_ANNOTATION) or (m.get("labels") or {}).get(INDEX_LABEL)
    if raw is None or not str(raw).isdigit():
        return None
    return int(raw)


def parse_indexes(text: str | None) -> set[int]:
    """"1,3-5" -> {1, 3, 4, 5} (status.completedIndexes)."""
    out: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        if a.isdigit() and (not b or b.isdigit()):
            out.update(range(int(a), int(b or a) + 1))
    return out


def format_indexes(indexes: set[int]) -> str:
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(_run(run))
        run = [i]
    if run:
        parts.append(_run(run))
    return ",".join(parts)


def _run(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def _exit_codes_match(req: dict[str, Any], pod: dict[str, Any]) -> tuple[str, int] | None:
    """The first (container, exit code) matching an onExitCodes requirement;
    containers that exited 0 never match."""
    st = pod.get("status") or {}
    statuses = (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or [])
    values = set(req.get("values") or [])
    for cs in statuses:
        if req.get("containerName") and cs.get("name") != req["containerName"]:
            continue
        term = (cs.get("state") or {}).get("terminated")
        if not term:
            continue
        code = int(term.get("exitCode") or 0)
        if code == 0:
            continue
        if (req.get("operator") == "In") == (code in values):
            return str(cs.get("name")), code
    return None


def match_failure_policy(job: dict[str, Any], pod: dict[str, Any]) -> tuple[str | None, str]:
    """(action, message) of the first podFailurePolicy rule matching a failed pod:
    FailJob, FailIndex, Ignore or Count; (None, "") when none matches (counted)."""
    rules = ((job.get("spec") or {}).get("podFailurePolicy") or {}).get("rules") or []
    m = pod["metadata"]
    for i, rule in enumerate(rules):
        action = rule.get("action")
        if rule.get("onExitCodes"):
            hit = _exit_codes_match(rule["onExitCodes"], pod)
            if hit is not None:
                return action, (f"Container {hit[0]} for pod {m.get('namespace')}/{m['name']} failed with "
                                f"exit code {hit[1]} matching {action} rule at index {i}")
        for pat in rule.get("onPodConditions") or []:
            for c in (pod.get("status") or {}).get("conditions") or []:
                if c.get("type") == pat.get("type") and c.get("status") == (pat.get("status") or "True"):
                    return action, (f"Pod {m.get('namespace')}/{m['name']} has condition {c['type']} "
                                    f"matching {action} rule at index {i}")
    return None, ""


def condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def is_true(job: dict[str, Any], type_: str) -> bool:
    c = condition(job, type_)
    return c is not None and c.get("status") == "True"


def is_finished(job: dict[str, Any]) -> bool:
    return is_true(job, "Complete") or is_true(job, "Failed")


def finish_time(job: dict[str, Any]) -> str | None:
    for t in ("Complete", "Failed"):
        c = condition(job, t)
        if c is not None and c.get("status") == "True":
            return c.get("lastTransitionTime") or (job.get("status") or {}).get("completionTime")
    return None


def set_condition(status: dict[str, Any], type_: str, cstatus: str, reason: str, message: str) -> bool:
    """Set or update a condition; True if anything changed (the probe time moves only
    on a change, as upstream's updateConditionsIfChanged)."""
    conds = status.setdefault("conditions", [])
    now = meta.now()
    for c in conds:
        if c.get("type") == type_:
            if c.get("status") == cstatus and c.get("reason") == reason and c.get("message") == message:
                return False
            if c.get("status") != cstatus:
                c["lastTransitionTime"] = now
            c.update(status=cstatus, reason=reason, message=message, lastProbeTime=now)
            return True
    conds.append({"type": type_, "status": cstatus, "lastProbeTime": now, "lastTransitionTime": now,
                  "reason": reason, "message": message})
    return True


def backoff_delay(failures: int) -> float:
    """Pod re-creation delay after `failures` consecutive failures: 10 s doubling, capped at 6 min."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_BASE * (2 ** (failures - 1)), BACKOFF_MAX)


def pod_failed(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Failed"


def pod_succeeded(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Succeeded"


def default_selector(job: dict[str, Any]) -> dict[str, Any]:
    """spec.selector, or the controller-uid selector the apiserver defaults to."""
    sel = (job.get("spec") or {}).get("selector")
    if sel:
        return dict(sel)
    return {"matchLabels": {CONTROLLER_UID_LABEL: job["metadata"]["uid"]}}
