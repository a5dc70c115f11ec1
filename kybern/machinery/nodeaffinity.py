"""Node selector terms (k8s.io/component-helpers/scheduling/corev1/nodeaffinity):
shared by the scheduler's NodeAffinity plugin and the DaemonSet controller.
Terms are ORed, the expressions and fields within a term ANDed; an empty term
matches nothing, as upstream."""

from __future__ import annotations

from typing import Any


def expression_matches(e: dict[str, Any], labels: dict[str, str]) -> bool:
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


def field_matches(e: dict[str, Any], node_name: str) -> bool:
    """matchFields supports only metadata.name, as upstream."""
    if e.get("key") != "metadata.name":
        return False
    vals = e.get("values") or []
    if e.get("operator") == "In":
        return node_name in vals
    if e.get("operator") == "NotIn":
        return node_name not in vals
    return False


def term_matches(term: dict[str, Any], labels: dict[str, str], node_name: str) -> bool:
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    return all(expression_matches(e, labels) for e in exprs) and all(field_matches(f, node_name) for f in fields)


def any_term_matches(terms: list[dict[str, Any]], labels: dict[str, str], node_name: str) -> bool:
    return any(term_matches(t, labels, node_name) for t in terms)
