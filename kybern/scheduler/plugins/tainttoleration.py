"""TaintToleration: a node's NoSchedule/NoExecute taints repel pods that do not
tolerate them (filter); untolerated PreferNoSchedule taints lower the score."""

from __future__ import annotations

from typing import Any

from kybern.scheduler.framework import (
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
    default_normalize,
)


def tolerates(tol: dict[str, Any], taint: dict[str, Any]) -> bool:
    """v1.Toleration.ToleratesTaint."""
    effect = tol.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = tol.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (tol.get("value") or "") == (taint.get("value") or "")
    return False


def first_untolerated(taints: list[dict[str, Any]], tolerations: list[dict[str, Any]],
                      effects: tuple[str, ...] = ("NoSchedule", "NoExecute")) -> dict[str, Any] | None:
    for t in taints:
        if t.get("effect") not in effects:
            continue
        if not any(tolerates(tol, t) for tol in tolerations):
            return t
    return None


class TaintToleration:
    name = "TaintToleration"
    weight = 3

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        t = first_untolerated(node.taints, pod.tolerations)
        if t is None:
            return None
        return Status(UNSCHEDULABLE_AND_UNRESOLVABLE,
                      f"node(s) had untolerated taint {{{t.get('key', '')}: {t.get('value', '')}}}")

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        if not node.taints:
            return 0
        tols = [t for t in pod.tolerations if not t.get("effect") or t.get("effect") == "PreferNoSchedule"]
        return sum(1 for t in node.taints if t.get("effect") == "PreferNoSchedule"
                   and not any(tolerates(tol, t) for tol in tols))

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores, reverse=True)
