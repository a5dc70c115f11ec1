"""Taints and tolerations (k8s.io/api/core/v1 toleration.go): shared by the
scheduler, the node lifecycle controller and the DaemonSet controller."""

from __future__ import annotations

from typing import Any


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
    """The first taint with one of `effects` that no toleration tolerates."""
    for t in taints:
        if t.get("effect") not in effects:
            continue
        if not any(tolerates(tol, t) for tol in tolerations):
            return t
    return None
