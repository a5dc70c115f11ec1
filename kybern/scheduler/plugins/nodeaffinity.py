"""NodeAffinity: spec.nodeSelector and requiredDuringScheduling node affinity
must match the node's labels (filter); preferred terms add their weight (score).
Node selector terms are ORed, expressions within a term ANDed, as upstream."""

from __future__ import annotations

from typing import Any

from kybern.machinery import nodeaffinity
from kybern.scheduler.framework import (
    STATUS_SKIP,
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
    default_normalize,
)

ERR_REASON = "node(s) didn't match Pod's node affinity/selector"


def term_matches(term: dict[str, Any], node: NodeInfo) -> bool:
    return nodeaffinity.term_matches(term, node.labels, node.name)


def required_terms(pod: PodInfo) -> list[dict[str, Any]] | None:
    aff = ((pod.spec.get("affinity") or {}).get("nodeAffinity") or {})
    req = aff.get("requiredDuringSchedulingIgnoredDuringExecution")
    if req is None:
        return None
    return req.get("nodeSelectorTerms") or []


class NodeAffinity:
    name = "NodeAffinity"
    weight = 2

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        sel = pod.spec.get("nodeSelector") or {}
        terms = required_terms(pod)
        if not sel and terms is None:
            return STATUS_SKIP
        state["NodeAffinity"] = (sel, terms)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        sel, terms = state["NodeAffinity"]
        labels = node.labels
        for k, v in sel.items():
            if labels.get(k) != v:
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON)
        if terms is not None and not any(term_matches(t, node) for t in terms):
            return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON)
        return None

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        aff = ((pod.spec.get("affinity") or {}).get("nodeAffinity") or {})
        pref = aff.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        if not pref:
            return STATUS_SKIP
        state["NodeAffinity/preferred"] = pref
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        total = 0
        for p in state["NodeAffinity/preferred"]:
            w = int(p.get("weight") or 0)
            if w and term_matches(p.get("preference") or {}, node):
                total += w
        return total

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores)
