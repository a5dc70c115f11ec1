"""Pod facts the workload controllers share: is it active, ready, available
(upstream pkg/api/v1/pod and pkg/controller helpers)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from kybern.machinery import meta


def is_active(pod: dict[str, Any]) -> bool:
    """Counts toward a ReplicaSet: not terminal and not being deleted (FilterActivePods)."""
    phase = pod.get("status", {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not meta.is_deleting(pod)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def is_ready(pod: dict[str, Any]) -> bool:
    c = condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def ready_since(pod: dict[str, Any]) -> _dt.datetime | None:
    c = condition(pod, "Ready")
    if c is None or c.get("status") != "True" or not c.get("lastTransitionTime"):
        return None
    return meta.parse_time(c["lastTransitionTime"])


def is_available(pod: dict[str, Any], min_ready_seconds: int, now: _dt.datetime) -> bool:
    """Ready for at least minReadySeconds (podutil.IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + _dt.timedelta(seconds=min_ready_seconds) < now


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def max_restarts(pod: dict[str, Any]) -> int:
    return max((int(s.get("restartCount") or 0)
                for s in pod.get("status", {}).get("containerStatuses") or []), default=0)
