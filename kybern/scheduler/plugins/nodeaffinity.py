"""NodeAffinity: spec.nodeSelector and requiredDuringScheduling node affinity
must match the node's labels (filter); preferred terms add their weight (score).
Node selector terms are ORed, expressions within a term ANDed, as upstream."""

from __future__ import annotations

from typing import Any

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


def _expr_matches(e: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, vals = e.get("key", ""), e.get("operator", ""), e.get("values") or []
    if op == "In":
        return key in labels and labels[key] in vals
    if op == "NotIn":
        return key not in labels or labels[key] not in vals
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt"):
        if key not in labels or len(vals) != 1:
            return False
        try:
            have, want = int(labels[key]), int(vals[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _field_matches(e: dict[str, Any], node: NodeInfo) -> bool:
    if e.get("key") != "metadata.name":
        return False
    vals = e.get("values") or []
    if e.get("operator") == "In":
        return node.name in vals
    if e.get("operator") == "NotIn":
        return node.name not in vals
    return False


def term_matches(term: dict[str, Any], node: NodeInfo) -> bool:
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches nothing
    return all(_expr_matches(e, node.labels) for e in exprs) and \
        all(_field_matches(f, node) for f in fields)


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
