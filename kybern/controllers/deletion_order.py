"""Which pods a ReplicaSet deletes first when scaling down: upstream's
ActivePodsWithRanks ordering (pkg/controller/controller_utils.go), with the
PodDeletionCost and LogarithmicScaleDown features on, as in 1.32:

 1. unscheduled before scheduled
 2. Pending before Unknown before Running
 3. not ready before ready
 4. lower controller.kubernetes.io/pod-deletion-cost first
 5. more related pods on the same node first (spread the survivors)
 6. ready for less time first (compared on a log2 scale of age)
 7. more container restarts first
 8. newer first (again on a log2 scale)
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
from typing import Any

from kybern.controllers import podutil
from kybern.machinery import meta

_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def _cost(pod: dict[str, Any]) -> int:
    try:
        return int((pod["metadata"].get("annotations") or {}).get(DELETION_COST, 0))
    except (TypeError, ValueError):
        return 0


def _created(pod: dict[str, Any]) -> _dt.datetime | None:
    ts = pod["metadata"].get("creationTimestamp")
    return meta.parse_time(ts) if ts else None


def _log_rank(t: _dt.datetime, now: _dt.datetime) -> int:
    d = (now - t).total_seconds() * 1e9  # upstream works in nanoseconds
    return int(math.log2(d)) if d > 0 else -1


def _time_less(t1: _dt.datetime | None, t2: _dt.datetime | None, now: _dt.datetime,
               uid1: str, uid2: str) -> bool | None:
    """True if the pod with t1 goes first; None if equal. Empty time first, then
    more recent (smaller log2 age bucket); same bucket: by uid, as upstream."""
    if t1 == t2:
        return None
    if t1 is None or t2 is None:
        return t1 is None
    diff = _log_rank(t1, now) - _log_rank(t2, now)
    if diff == 0:
        return uid1 < uid2
    return diff < 0


def rank_for_deletion(pods: list[dict[str, Any]], related: list[dict[str, Any]],
                      now: _dt.datetime | None = None) -> list[dict[str, Any]]:
    """`pods` sorted so that the ones to delete first come first. `related` are the
    pods of every ReplicaSet with the same controller (they count for co-location)."""
    now = now or podutil.utcnow()
    on_node: dict[str, int] = {}
    for p in related:
        if podutil.is_active(p):
            n = p.get("spec", {}).get("nodeName") or ""
            on_node[n] = on_node.get(n, 0) + 1
    info = []
    for p in pods:
        node = p.get("spec", {}).get("nodeName") or ""
        ready = podutil.is_ready(p)
        info.append((p, {
            "node": node, "phase": _PHASE_ORDER.get(p.get("status", {}).get("phase") or "", 0),
            "ready": ready, "cost": _cost(p), "rank": on_node.get(node, 0),
            "ready_since": podutil.ready_since(p) if ready else None,
            "restarts": podutil.max_restarts(p), "created": _created(p),
            "uid": p["metadata"].get("uid", ""),
        }))

    def less(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
        if a["node"] != b["node"] and (not a["node"] or not b["node"]):
            return not a["node"]
        if a["phase"] != b["phase"]:
            return a["phase"] < b["phase"]
        if a["ready"] != b["ready"]:
            return not a["ready"]
        if a["cost"] != b["cost"]:
            return a["cost"] < b["cost"]
        if a["rank"] != b["rank"]:
            return a["rank"] > b["rank"]
        if a["ready"] and b["ready"]:
            r = _time_less(a["ready_since"], b["ready_since"], now, a["uid"], b["uid"])
            if r is not None:
                return r
        if a["restarts"] != b["restarts"]:
            return a["restarts"] > b["restarts"]
        return _time_less(a["created"], b["created"], now, a["uid"], b["uid"])

    def cmp(x: tuple[dict[str, Any], dict[str, Any]], y: tuple[dict[str, Any], dict[str, Any]]) -> int:
        if less(x[1], y[1]):
            return -1
        if less(y[1], x[1]):
            return 1
        return 0

    return [p for p, _ in sorted(info, key=functools.cmp_to_key(cmp))]
