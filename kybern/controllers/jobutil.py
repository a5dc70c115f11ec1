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
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"

MSG_BACKOFF = "Job has reached the specified backoff limit"
MSG_DEADLINE = "Job was active longer than specified deadline"
MSG_COMPLETIONS = "Reached expected number of succeeded pods"
MSG_FAILED_INDEXES = "Job has failed indexes"
MSG_MAX_FAILED_INDEXES = "Job has exceeded the specified maximal number of failed indexes"

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
    # orderedIntervals.String(): two neighbours are written "0,1", three or more "0-2"
    if len(run) == 1:
        return str(run[0])
    return f"{run[0]},{run[-1]}" if len(run) == 2 else f"{run[0]}-{run[-1]}"


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


def per_index(job: dict[str, Any]) -> bool:
    """backoffLimitPerIndex in force: an Indexed Job whose indexes fail on their own."""
    spec = job.get("spec") or {}
    return spec.get("completionMode") == "Indexed" and spec.get("backoffLimitPerIndex") is not None


def _count(pod: dict[str, Any], key: str) -> int:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        v = int(raw) if raw is not None else 0
    except ValueError:
        return 0
    return v if 0 <= v <= 2147483647 else 0


def index_failure_counts(pod: dict[str, Any]) -> tuple[int, int]:
    """(failures, ignored failures) of the pod's index before this pod, from its annotations."""
    return _count(pod, INDEX_FAILURE_COUNT), _count(pod, INDEX_IGNORED_FAILURE_COUNT)


def new_index_failure_counts(job: dict[str, Any], replaced: dict[str, Any] | None) -> tuple[int, int]:
    """getNewIndexFailureCounts: the counts a replacement of `replaced` carries."""
    if replaced is None:
        return 0, 0
    failures, ignored = index_failure_counts(replaced)
    if match_failure_policy(job, replaced)[0] == "Ignore":
        return failures, ignored + 1
    return failures + 1, ignored


def is_failed(pod: dict[str, Any]) -> bool:
    """isPodFailed: Failed, or deleted before it succeeded (with podReplacementPolicy
    Failed, only Failed)."""
    return pod_failed(pod) or (meta.is_deleting(pod) and not pod_succeeded(pod))


def index_failed(job: dict[str, Any], pod: dict[str, Any], failed: bool) -> bool:
    """isIndexFailed: a FailIndex rule matched, or a counted failure used up the index's
    backoffLimitPerIndex."""
    if not failed:
        return False
    action = match_failure_policy(job, pod)[0]
    if action == "FailIndex":
        return True
    if action == "Ignore":
        return False
    return index_failure_counts(pod)[0] >= int((job.get("spec") or {}).get("backoffLimitPerIndex") or 0)


def finished_time(pod: dict[str, Any]) -> str:
    """When the pod finished: its last container's finishedAt, else its deletion time."""
    st = pod.get("status") or {}
    times = [str(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt") or "")
             for cs in st.get("containerStatuses") or []]
    fallback = pod["metadata"].get("deletionTimestamp") or pod["metadata"].get("creationTimestamp") or ""
    return max([t for t in times if t] or [str(fallback)])


def match_success_policy(job: dict[str, Any], completed: set[int]) -> str | None:
    """matchSuccessPolicy: "Matched rules at index N" for the first successPolicy rule
    the succeeded indexes meet, else None."""
    spec = job.get("spec") or {}
    rules = (spec.get("successPolicy") or {}).get("rules") or []
    n = int(spec.get("completions") or 0)
    if not rules or not completed:
        return None
    for i, rule in enumerate(rules):
        count = rule.get("succeededCount")
        if rule.get("succeededIndexes") is not None:
            required = {x for x in parse_indexes(rule["succeededIndexes"]) if x < n}
            if not required:
                continue  # unparseable: the rule is skipped
            contains = len(required & completed)
            if contains == len(required) or (count is not None and contains >= int(count)):
                return f"Matched rules at index {i}"
        elif count is not None and len(completed) >= int(count):
            return f"Matched rules at index {i}"
    return None


def past_backoff_limit_on_failure(job: dict[str, Any], pods: list[dict[str, Any]]) -> bool:
    """pastBackoffLimitOnFailure: with restartPolicy OnFailure, the restarts of every
    container of the Job's Running or Pending pods reach backoffLimit (pass 0 with 0)."""
    spec = job.get("spec") or {}
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    total = 0
    for p in pods:
        st = p.get("status") or {}
        if st.get("phase") in ("Running", "Pending"):
            total += sum(int(cs.get("restartCount") or 0)
                         for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []))
    limit = int(spec.get("backoffLimit") if spec.get("backoffLimit") is not None else 6)
    return total > 0 if limit == 0 else total >= limit
