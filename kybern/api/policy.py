"""policy/v1 PodDisruptionBudget: status handling and validation
(pkg/registry/policy/poddisruptionbudget, pkg/apis/policy/validation). The
disruption controller and pod eviction come with later work."""

from __future__ import annotations

from typing import Any

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy
from kybern.machinery import errors


def _int_or_percent(v: Any, path: str) -> list[Cause]:
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 0:
            return [errors.cause(path, f"Invalid value: {v}: must be greater than or equal to 0")]
    elif isinstance(v, str):
        if not v.endswith("%") or not v[:-1].isdigit():
            return [errors.cause(path, f'Invalid value: "{v}": a valid percent string must be a numeric string '
                                 "followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is "
                                 "'[0-9]+%')")]
        if int(v[:-1]) > 100:
            return [errors.cause(path, f'Invalid value: "{v}": must not be greater than 100%')]
    return []


class PDBStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        out: list[Cause] = []
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            out.append(errors.cause("spec", "Invalid value: ...: minAvailable and maxUnavailable cannot be both "
                                    "set"))
        out += _int_or_percent(spec.get("minAvailable"), "spec.minAvailable")
        out += _int_or_percent(spec.get("maxUnavailable"), "spec.maxUnavailable")
        pol = spec.get("unhealthyPodEvictionPolicy")
        if pol not in (None, "IfHealthyBudget", "AlwaysAllow"):
            out.append(errors.cause("spec.unhealthyPodEvictionPolicy", f'Unsupported value: "{pol}": supported '
                                    'values: "AlwaysAllow", "IfHealthyBudget"', "FieldValueNotSupported"))
        return out


RESOURCES = [
    ResourceInfo("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True,
                 "io.k8s.api.policy.v1.PodDisruptionBudget", short_names=("pdb",), subresources=("status",),
                 strategy=PDBStrategy()),
]
