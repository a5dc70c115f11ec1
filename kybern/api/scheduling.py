"""scheduling.k8s.io/v1 PriorityClass (pkg/registry/scheduling/priorityclass,
pkg/apis/scheduling/validation) and the two system classes the apiserver creates
at start. The Priority admission plugin that resolves a pod's priorityClassName
lives with the apiserver's other admission (kybern/apiserver/server.py)."""

from __future__ import annotations

from typing import Any

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy
from kybern.machinery import errors

HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
SYSTEM_CRITICAL_PRIORITY = 2 * HIGHEST_USER_DEFINABLE_PRIORITY
SYSTEM_PREFIX = "system-"

# created at start (the apiserver's bootstrap-system-priority-classes hook)
SYSTEM_CLASSES: list[dict[str, Any]] = [
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
     "metadata": {"name": "system-node-critical"}, "value": SYSTEM_CRITICAL_PRIORITY + 1000,
     "description": "Used for system critical pods that must not be moved from their current node."},
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
     "metadata": {"name": "system-cluster-critical"}, "value": SYSTEM_CRITICAL_PRIORITY,
     "description": "Used for system critical pods that must run in the cluster, but can be moved to another "
                    "node if necessary."},
]
_SYSTEM = {c["metadata"]["name"]: c["value"] for c in SYSTEM_CLASSES}
PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")


def _known_system_class(name: str, value: Any, global_default: Any) -> str | None:
    """IsKnownSystemPriorityClass: why a `system-` class is refused, or None."""
    if name not in _SYSTEM:
        return f"{name} is not a known system priority class"
    if value != _SYSTEM[name]:
        return f"value of {name} PriorityClass must be {_SYSTEM[name]}"
    if global_default:
        return f"globalDefault of {name} PriorityClass must be false"
    return None


class PriorityClassStrategy(Strategy):
    # the priorityclass REST's Delete (a list-then-delete such as `kubectl delete pc --all`
    # meets it too; a deletecollection does not, as upstream's Store.DeleteCollection)
    undeletable = dict.fromkeys(_SYSTEM, "this is a system priority class and cannot be deleted")

    def default(self, obj: Obj) -> None:
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")

    def validate(self, obj: Obj) -> list[Cause]:
        out: list[Cause] = []
        name = (obj.get("metadata") or {}).get("name") or ""
        value = obj.get("value")
        if name.startswith(SYSTEM_PREFIX):
            why = _known_system_class(name, value, obj.get("globalDefault"))
            if why:
                out.append(errors.cause("metadata.name", "Forbidden: priority class names with 'system-' prefix "
                                        f"are reserved for system use only. error: {why}", "FieldValueForbidden"))
        elif isinstance(value, int) and value > HIGHEST_USER_DEFINABLE_PRIORITY:
            out.append(errors.cause("value", "Forbidden: maximum allowed value of a user defined priority is "
                                    f"{HIGHEST_USER_DEFINABLE_PRIORITY}", "FieldValueForbidden"))
        policy = obj.get("preemptionPolicy")
        if policy is not None and policy not in PREEMPTION_POLICIES:
            out.append(errors.cause("preemptionPolicy", f'Unsupported value: "{policy}": supported values: '
                                    '"PreemptLowerPriority", "Never"', "FieldValueNotSupported"))
        return out

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new)
        if new.get("value") != old.get("value"):
            out.append(errors.cause("value", "Forbidden: may not be changed in an update.", "FieldValueForbidden"))
        if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
            out.append(errors.cause("preemptionPolicy", f'Invalid value: "{new.get("preemptionPolicy")}": field '
                                    "is immutable"))
        return out


def default_class(classes: list[Obj]) -> Obj | None:
    """The global default class; the lowest value if a race left several."""
    defaults = [c for c in classes if c.get("globalDefault")]
    return min(defaults, key=lambda c: int(c.get("value") or 0)) if defaults else None


RESOURCES = [
    ResourceInfo("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False,
                 "io.k8s.api.scheduling.v1.PriorityClass", short_names=("pc",), strategy=PriorityClassStrategy()),
]
