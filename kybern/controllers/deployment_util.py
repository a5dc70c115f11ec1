"""The arithmetic of Deployments, free of I/O (upstream
pkg/controller/deployment/util): the pod-template-hash, maxSurge/maxUnavailable
rounding, how far a new ReplicaSet may grow, proportional scaling, revisions,
conditions and status. Objects are the plain dicts the API serves."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import orjson

from kybern.api.core import default_pod_spec
from kybern.machinery import meta

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SKIP_COPY = {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
              "deployment.kubernetes.io/error-selector-overlapping-with",
              "deployment.kubernetes.io/selector-updated-at"}
MAX_INT32 = 2**31 - 1

# condition reasons (deployment_util.go)
REASON_RS_UPDATED = "ReplicaSetUpdated"
REASON_RS_CREATE_ERROR = "ReplicaSetCreateError"
REASON_NEW_RS = "NewReplicaSetCreated"
REASON_FOUND_NEW_RS = "FoundNewReplicaSet"
REASON_NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
REASON_TIMED_OUT = "ProgressDeadlineExceeded"
REASON_PAUSED = "DeploymentPaused"
REASON_RESUMED = "DeploymentResumed"
REASON_MIN_AVAILABLE = "MinimumReplicasAvailable"
REASON_MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


# -- the pod-template-hash ------------------------------------------------------
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand


def safe_encode(s: str) -> str:
    """rand.SafeEncodeString: map each byte onto consonants and digits (no vowels,
    so a hash never spells a word)."""
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in s.encode())


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def compute_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    """FNV-32a of the template, the collision count mixed in, as its decimal string
    safe-encoded (controller.ComputeHash). Upstream hashes Go's printed struct; we
    hash canonical JSON, so values differ from a real cluster but are as stable."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0"
    return safe_encode(str(fnv32a(data)))


def without_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = dict(template)
    m = dict(t.get("metadata") or {})
    labels = dict(m.get("labels") or {})
    labels.pop(HASH_LABEL, None)
    m["labels"] = labels
    t["metadata"] = {k: v for k, v in m.items() if v not in (None, {}) or k == "labels"}
    return t


def equal_ignore_hash(t1: dict[str, Any], t2: dict[str, Any]) -> bool:
    def norm(t: dict[str, Any], defaults: bool) -> bytes:
        n = without_hash(t)
        if not n["metadata"].get("labels"):
            n["metadata"].pop("labels", None)
        if not n["metadata"]:
            n.pop("metadata", None)
        if defaults and isinstance(n.get("spec"), dict):
            n["spec"] = orjson.loads(orjson.dumps(n["spec"]))
            default_pod_spec(n["spec"])
        return orjson.dumps(n, option=orjson.OPT_SORT_KEYS)
    # a template stored before a default was added equals itself with that default (upstream
    # defaults what it reads from etcd; kybern defaults what it writes)
    return norm(t1, False) == norm(t2, False) or norm(t1, True) == norm(t2, True)


# -- maxSurge / maxUnavailable ---------------------------------------------------
def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    s = str(value).strip()
    if s.endswith("%"):
        v = int(s[:-1])
        return -(-v * total // 100) if round_up else v * total // 100
    return int(s)


def replicas(d: dict[str, Any]) -> int:
    r = d.get("spec", {}).get("replicas")
    return 1 if r is None else int(r)


def is_rolling(d: dict[str, Any]) -> bool:
    return (d.get("spec", {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None,
                       desired: int) -> tuple[int, int]:
    surge = scaled_value(max_surge if max_surge is not None else 0, desired, True)
    unavailable = scaled_value(max_unavailable if max_unavailable is not None else 0, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # rounding made both zero: let one pod go rather than stall
    return surge, unavailable


def _rolling_params(d: dict[str, Any]) -> tuple[int | str, int | str]:
    ru = (d.get("spec", {}).get("strategy") or {}).get("rollingUpdate") or {}
    return ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%")


def max_surge(d: dict[str, Any]) -> int:
    if not is_rolling(d):
        return 0
    s, u = _rolling_params(d)
    return resolve_fenceposts(s, u, replicas(d))[0]


def max_unavailable(d: dict[str, Any]) -> int:
    want = replicas(d)
    if not is_rolling(d) or want == 0:
        return 0
    s, u = _rolling_params(d)
    return min(resolve_fenceposts(s, u, want)[1], want)


# -- replica sets ----------------------------------------------------------------
def rs_replicas(rs: dict[str, Any] | None) -> int:
    if rs is None:
        return 0
    r = rs.get("spec", {}).get("replicas")
    return 1 if r is None else int(r)


def rs_status(rs: dict[str, Any] | None, field: str) -> int:
    return int(((rs or {}).get("status") or {}).get(field) or 0)


def sum_spec(rss: list[dict[str, Any] | None]) -> int:
    return sum(rs_replicas(rs) for rs in rss if rs is not None)


def sum_status(rss: list[dict[str, Any] | None], field: str) -> int:
    return sum(rs_status(rs, field) for rs in rss if rs is not None)


def active(rss: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    return [rs for rs in rss if rs is not None and rs_replicas(rs) > 0]


def _created_key(rs: dict[str, Any]) -> tuple[str, str]:
    return (rs["metadata"].get("creationTimestamp") or "", rs["metadata"]["name"])


def by_creation(rss: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rss, key=_created_key)


def by_size_newer(rss: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Larger first; ties: newer first (ReplicaSetsBySizeNewer)."""
    s = sorted(rss, key=_created_key, reverse=True)
    return sorted(s, key=rs_replicas, reverse=True)


def by_size_older(rss: list[dict[str, Any]]) -> list[dict[str, Any]]:
    s = sorted(rss, key=_created_key)
    return sorted(s, key=rs_replicas, reverse=True)


def revision(obj: dict[str, Any]) -> int:
    v = (obj["metadata"].get("annotations") or {}).get(REVISION)
    try:
        return int(v) if v else 0
    except ValueError:
        return 0


def by_revision(rss: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(by_creation(rss), key=revision)


def max_revision(rss: list[dict[str, Any]]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def find_new_rs(d: dict[str, Any], rss: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The oldest ReplicaSet whose template equals the Deployment's, ignoring the hash."""
    tmpl = d.get("spec", {}).get("template") or {}
    for rs in by_creation(rss):
        if equal_ignore_hash(rs.get("spec", {}).get("template") or {}, tmpl):
            return rs
    return None


def new_rs_new_replicas(d: dict[str, Any], all_rss: list[dict[str, Any] | None],
                        new_rs: dict[str, Any]) -> int:
    """How many replicas the new ReplicaSet may have now (NewRSNewReplicas)."""
    want = replicas(d)
    if not is_rolling(d):
        return want
    cur = rs_replicas(new_rs)
    surge = scaled_value(_rolling_params(d)[0], want, True)
    total = sum_spec(all_rss)
    max_total = want + surge
    if total >= max_total:
        return cur
    up = min(max_total - total, want - cur)
    return cur + up


def annotation_int(rs: dict[str, Any], key: str) -> int | None:
    v = (rs["metadata"].get("annotations") or {}).get(key)
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def set_replicas_annotations(rs: dict[str, Any], desired: int, max_total: int) -> bool:
    if rs["metadata"].get("annotations") is None:
        rs["metadata"]["annotations"] = {}
    ann = rs["metadata"]["annotations"]
    changed = False
    for k, v in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_total))):
        if ann.get(k) != v:
            ann[k] = v
            changed = True
    return changed


def replicas_annotations_need_update(rs: dict[str, Any], desired: int, max_total: int) -> bool:
    ann = rs["metadata"].get("annotations") or {}
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(max_total)


def set_new_rs_annotations(d: dict[str, Any], rs: dict[str, Any], new_revision: int,
                           exists: bool) -> bool:
    """Copy the Deployment's annotations and bump the revision (SetNewReplicaSetAnnotations)."""
    ann = rs["metadata"].get("annotations")
    if ann is None:
        ann = rs["metadata"]["annotations"] = {}
    changed = False
    for k, v in (d["metadata"].get("annotations") or {}).items():
        if k in _SKIP_COPY or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    old = ann.get(REVISION)
    try:
        old_int = int(old) if old else 0
    except ValueError:
        old_int = 0
    if old_int < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old:  # rolling back onto this RS: remember the revisions it served
            hist = ann.get(REVISION_HISTORY)
            ann[REVISION_HISTORY] = f"{hist},{old}" if hist else old
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


def is_saturated(d: dict[str, Any], rs: dict[str, Any] | None) -> bool:
    if rs is None:
        return False
    want = replicas(d)
    return (rs_replicas(rs) == want and annotation_int(rs, DESIRED_REPLICAS) == want
            and rs_status(rs, "availableReplicas") == want)


def rs_fraction(rs: dict[str, Any], d: dict[str, Any]) -> int:
    """How much this RS grows (or shrinks) for a resize of the Deployment."""
    want = replicas(d)
    if want == 0:
        return -rs_replicas(rs)
    deployment_replicas = want + max_surge(d)
    annotated = annotation_int(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = int((d.get("status") or {}).get("replicas") or 0)
    if annotated == 0:
        return 0
    size = rs_replicas(rs) * deployment_replicas / annotated
    return _round_half_away(size) - rs_replicas(rs)


def _round_half_away(x: float) -> int:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def proportion(rs: dict[str, Any] | None, d: dict[str, Any], to_add: int, added: int) -> int:
    if rs is None or rs_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = rs_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


# -- conditions ------------------------------------------------------------------
def new_condition(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
    now = meta.now()
    return {"type": type_, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def get_condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in status.get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def set_condition(status: dict[str, Any], cond: dict[str, Any]) -> None:
    cur = get_condition(status, cond["type"])
    if cur is not None and cur.get("status") == cond["status"] and cur.get("reason") == cond["reason"]:
        return
    if cur is not None and cur.get("status") == cond["status"]:
        cond = dict(cond, lastTransitionTime=cur.get("lastTransitionTime"))
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
    status["conditions"].append(cond)


def remove_condition(status: dict[str, Any], type_: str) -> None:
    if "conditions" in status:
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != type_]
        if not status["conditions"]:
            del status["conditions"]


def has_progress_deadline(d: dict[str, Any]) -> bool:
    p = d.get("spec", {}).get("progressDeadlineSeconds", 600)
    return p is not None and p != MAX_INT32


def calculate_status(d: dict[str, Any], all_rss: list[dict[str, Any] | None],
                     new_rs: dict[str, Any] | None) -> dict[str, Any]:
    available = sum_status(all_rss, "availableReplicas")
    total = sum_spec(all_rss)
    old = d.get("status") or {}
    st: dict[str, Any] = {
        "observedGeneration": int(d["metadata"].get("generation") or 0),
        "replicas": sum_status(all_rss, "replicas"),
        "updatedReplicas": sum_status([new_rs], "replicas"),
        "readyReplicas": sum_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
    }
    if old.get("collisionCount") is not None:
        st["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        st["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= replicas(d) - max_unavailable(d):
        set_condition(st, new_condition("Available", "True", REASON_MIN_AVAILABLE,
                                        "Deployment has minimum availability."))
    else:
        set_condition(st, new_condition("Available", "False", REASON_MIN_UNAVAILABLE,
                                        "Deployment does not have minimum availability."))
    return st


def clean_status(st: dict[str, Any]) -> dict[str, Any]:
    """Drop zero counters as upstream's omitempty does (so equality checks and the
    JSON shape match a real cluster)."""
    return {k: v for k, v in st.items() if v not in (0, None, [])}


def complete(d: dict[str, Any], st: dict[str, Any]) -> bool:
    want = replicas(d)
    return (st.get("updatedReplicas", 0) == want and st.get("replicas", 0) == want
            and st.get("availableReplicas", 0) == want
            and st.get("observedGeneration", 0) >= int(d["metadata"].get("generation") or 0))


def progressing(d: dict[str, Any], st: dict[str, Any]) -> bool:
    old = d.get("status") or {}
    old_old = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_old = st.get("replicas", 0) - st.get("updatedReplicas", 0)
    return (st.get("updatedReplicas", 0) > old.get("updatedReplicas", 0) or new_old < old_old
            or st.get("readyReplicas", 0) > old.get("readyReplicas", 0)
            or st.get("availableReplicas", 0) > old.get("availableReplicas", 0))


def timed_out(d: dict[str, Any], st: dict[str, Any], now: _dt.datetime | None = None) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(st, "Progressing")
    if cond is None or cond.get("reason") == REASON_NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == REASON_TIMED_OUT:
        return True
    if not cond.get("lastUpdateTime"):
        return False
    deadline = int(d.get("spec", {}).get("progressDeadlineSeconds", 600))
    now = now or _dt.datetime.now(_dt.UTC)
    return meta.parse_time(cond["lastUpdateTime"]) + _dt.timedelta(seconds=deadline) < now
