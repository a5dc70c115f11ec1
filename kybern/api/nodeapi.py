"""node.k8s.io/v1 RuntimeClass (pkg/apis/node/validation, pkg/registry/node/runtimeclass)
and the RuntimeClass admission plugin's pod rules (plugin/pkg/admission/runtimeclass):
a pod naming a RuntimeClass that does not exist is refused; the class's
`overhead.podFixed` becomes the pod's `spec.overhead`, its `scheduling.nodeSelector`
is merged into the pod's and its tolerations added. The node does not run a handler
of its own per class (docs/node.md)."""

from __future__ import annotations

from typing import Any

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy, validate_dns_label
from kybern.machinery import errors


class RuntimeClassStrategy(Strategy):
    def validate(self, obj: Obj) -> list[Cause]:
        handler = obj.get("handler")
        return validate_dns_label(handler if isinstance(handler, str) else "", "handler")

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new)
        if new.get("handler") != old.get("handler"):
            out.append(errors.cause("handler", f'Invalid value: "{new.get("handler") or ""}": field is immutable'))
        return out


def admit_pod(pod: dict[str, Any], rc: dict[str, Any] | None) -> str | None:
    """Apply RuntimeClass `rc` (None: the pod names none) to `pod`; why it is refused, or None."""
    spec = pod.setdefault("spec", {})
    overhead = (rc or {}).get("overhead") or {}
    if rc is not None and overhead:
        fixed = overhead.get("podFixed")
        if spec.get("overhead") and spec["overhead"] != fixed:
            return "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"
        if fixed is not None:
            spec["overhead"] = fixed
    elif spec.get("overhead"):
        return "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead"
    scheduling = (rc or {}).get("scheduling") or {}
    if scheduling:
        selector = dict(spec.get("nodeSelector") or {})
        for key, want in (scheduling.get("nodeSelector") or {}).items():
            have = selector.get(key)
            if have is not None and have != want:
                return (f"conflict: runtimeClass.scheduling.nodeSelector[{key}] = {want}; "
                        f"pod.spec.nodeSelector[{key}] = {have}")
            selector[key] = want
        if selector:
            spec["nodeSelector"] = selector
        tolerations = list(spec.get("tolerations") or [])
        for t in scheduling.get("tolerations") or []:
            if t not in tolerations:  # tolerations.MergeTolerations keeps one of equal ones
                tolerations.append(t)
        if tolerations:
            spec["tolerations"] = tolerations
    return None


RESOURCES = [
    ResourceInfo("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False,
                 "io.k8s.api.node.v1.RuntimeClass", strategy=RuntimeClassStrategy()),
]
