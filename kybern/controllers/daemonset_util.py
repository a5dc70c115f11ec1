"""Which nodes should run a DaemonSet's pod, and what that pod looks like
(upstream pkg/controller/daemon/util and the daemon predicates): node selector,
required node affinity and taints with the tolerations every daemon pod gets;
the pod is pinned to its node by required node affinity on `metadata.name`, so
the scheduler binds it. Kept apart from the scheduler's plugins on purpose:
controllers and the scheduler do not import each other (.importlinter)."""

from __future__ import annotations

from typing import Any

from kybern.machinery import meta, nodeaffinity, taints

DEFAULT_TOLERATIONS = [
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
]
NETWORK_UNAVAILABLE = ("node.kubernetes.io/network-unavailable", "NoSchedule")


def add_default_tolerations(spec: dict[str, Any]) -> None:
    """AddOrUpdateDaemonPodTolerations."""
    tols = list(spec.get("tolerations") or [])
    wanted = list(DEFAULT_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(NETWORK_UNAVAILABLE)
    for key, effect in wanted:
        if not any(t.get("key") == key and t.get("effect") == effect for t in tols):
            tols.append({"key": key, "operator": "Exists", "effect": effect})
    spec["tolerations"] = tols


def pin_to_node(spec: dict[str, Any], node: str) -> None:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: every required term keeps its
    expressions and gets matchFields metadata.name In [node]."""
    field = [{"key": "metadata.name", "operator": "In", "values": [node]}]
    aff = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    req = aff.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = [t for t in req.get("nodeSelectorTerms") or [] if t]
    if not terms:
        terms = [{"matchFields": field}]
    else:
        terms = [{**t, "matchFields": field} for t in terms]
    aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": terms}


def pinned_node(pod: dict[str, Any]) -> str | None:
    """The node a daemon pod is for: spec.nodeName once bound, else its affinity."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}) \
        .get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in req.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
                return str(f["values"][0])
    return None


def _affinity_ok(spec: dict[str, Any], node: dict[str, Any]) -> bool:
    labels = node["metadata"].get("labels") or {}
    sel = spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in sel.items()):
        return False
    req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}) \
        .get("requiredDuringSchedulingIgnoredDuringExecution")
    if not req:
        return True
    return nodeaffinity.any_term_matches(req.get("nodeSelectorTerms") or [], labels, node["metadata"]["name"])


def node_should_run(template_spec: dict[str, Any], node: dict[str, Any]) -> tuple[bool, bool]:
    """(should run, should continue running): taints with NoSchedule stop new
    pods; only NoExecute ones evict a pod already there (NodeShouldRunDaemonPod)."""
    if meta.is_deleting(node):
        return False, False
    spec = dict(template_spec)
    add_default_tolerations(spec)
    if not _affinity_ok(spec, node):
        return False, False
    tols = spec.get("tolerations") or []
    node_taints = (node.get("spec") or {}).get("taints") or []
    untolerated = [t for t in node_taints if t.get("effect") in ("NoSchedule", "NoExecute")
                   and not any(taints.tolerates(tol, t) for tol in tols)]
    if not untolerated:
        return True, True
    evicting = any(t.get("effect") == "NoExecute" for t in untolerated)
    return False, not evicting


def int_or_percent(value: int | str | None, total: int, round_up: bool, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, int):
        return value
    s = str(value)
    if s.endswith("%"):
        pct = int(s[:-1]) * total
        return -(-pct // 100) if round_up else pct // 100
    return int(s)
