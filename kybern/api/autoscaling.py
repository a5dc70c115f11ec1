"""autoscaling HorizontalPodAutoscaler at v1 and v2 over one storage key (v2 is
stored and preferred), with upstream's defaults and v1 <-> v2 conversion
(pkg/apis/autoscaling/v1/conversion.go): v1's targetCPUUtilizationPercentage is
v2's CPU `Utilization` metric; v2-only fields (other metrics, behavior,
conditions) ride in v1 as the `autoscaling.alpha.kubernetes.io/*` annotations,
so an object round-trips through v1 unchanged. The controller comes later."""

from __future__ import annotations

import copy

import orjson

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy
from kybern.machinery import errors

V1, V2 = "autoscaling/v1", "autoscaling/v2"
DEFAULT_CPU = 80
ANN_METRICS = "autoscaling.alpha.kubernetes.io/metrics"
ANN_CURRENT = "autoscaling.alpha.kubernetes.io/current-metrics"
ANN_CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
ANN_BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"


def _is_cpu_utilization(m: Obj) -> bool:
    r = m.get("resource") or {}
    return m.get("type") == "Resource" and r.get("name") == "cpu" and \
        (r.get("target") or {}).get("type") == "Utilization"


def _scale_up(rules: Obj | None) -> Obj:
    out = copy.deepcopy(rules) if rules else {}
    out.setdefault("stabilizationWindowSeconds", 0)
    out.setdefault("selectPolicy", "Max")
    out.setdefault("policies", [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                {"type": "Percent", "value": 100, "periodSeconds": 15}])
    return out


def _scale_down(rules: Obj | None) -> Obj:
    out = copy.deepcopy(rules) if rules else {}
    out.setdefault("stabilizationWindowSeconds", 300)
    out.setdefault("selectPolicy", "Max")
    out.setdefault("policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}])
    return out


def default_v2(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": DEFAULT_CPU}}}]
    if spec.get("behavior") is not None:
        b = spec["behavior"]
        b["scaleUp"] = _scale_up(b.get("scaleUp"))
        b["scaleDown"] = _scale_down(b.get("scaleDown"))


def to_v1(obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    spec, status = obj.get("spec") or {}, obj.get("status")
    ann = obj.setdefault("metadata", {}).setdefault("annotations", {})
    metrics = spec.pop("metrics", None) or []
    other = [m for m in metrics if not _is_cpu_utilization(m)]
    for m in metrics:
        if _is_cpu_utilization(m):
            spec["targetCPUUtilizationPercentage"] = m["resource"]["target"].get("averageUtilization")
    if other:
        ann[ANN_METRICS] = orjson.dumps(other).decode()
    behavior = spec.pop("behavior", None)
    if behavior is not None:
        ann[ANN_BEHAVIOR] = orjson.dumps(behavior).decode()
    if isinstance(status, dict):
        current = status.pop("currentMetrics", None) or []
        rest = []
        for m in current:
            r = m.get("resource") or {}
            if m.get("type") == "Resource" and r.get("name") == "cpu" and \
                    (r.get("current") or {}).get("averageUtilization") is not None:
                status["currentCPUUtilizationPercentage"] = r["current"]["averageUtilization"]
            else:
                rest.append(m)
        if rest:
            ann[ANN_CURRENT] = orjson.dumps(rest).decode()
        conds = status.pop("conditions", None)
        if conds:
            ann[ANN_CONDITIONS] = orjson.dumps(conds).decode()
        status.setdefault("currentReplicas", 0)
        status.setdefault("desiredReplicas", 0)
    if not ann:
        obj["metadata"].pop("annotations")
    obj["apiVersion"] = V1
    return obj


def to_v2(obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    spec = obj.setdefault("spec", {})
    status = obj.get("status")
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    metrics = []
    cpu = spec.pop("targetCPUUtilizationPercentage", None)
    if cpu is not None:
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": cpu}}})
    metrics += _load(ann.pop(ANN_METRICS, None))
    if metrics:
        spec["metrics"] = metrics
    behavior = ann.pop(ANN_BEHAVIOR, None)
    if behavior:
        spec["behavior"] = orjson.loads(behavior)
    current = _load(ann.pop(ANN_CURRENT, None))
    conds = _load(ann.pop(ANN_CONDITIONS, None))
    if isinstance(status, dict):
        cur_cpu = status.pop("currentCPUUtilizationPercentage", None)
        if cur_cpu is not None:
            current.insert(0, {"type": "Resource", "resource": {"name": "cpu", "current": {
                "averageUtilization": cur_cpu}}})
        if current:
            status["currentMetrics"] = current
        if conds:
            status["conditions"] = conds
    if "annotations" in (obj.get("metadata") or {}) and not ann:
        obj["metadata"].pop("annotations")
    obj["apiVersion"] = V2
    default_v2(obj)
    return obj


def _load(raw: str | None) -> list[Obj]:
    if not raw:
        return []
    try:
        v = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    return v if isinstance(v, list) else []


class HPAStrategy(Strategy):
    has_status = True
    tracks_generation = True
    storage_version = V2

    def __init__(self, api_version: str) -> None:
        self.api_version = api_version

    def convert(self, obj: Obj, api_version: str) -> Obj:
        return to_v1(obj) if api_version == V1 else to_v2(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"currentReplicas": 0, "desiredReplicas": 0} if self.api_version == V1 else \
            {"desiredReplicas": 0}

    def default(self, obj: Obj) -> None:
        if self.api_version == V2:
            default_v2(obj)
        else:
            obj.setdefault("spec", {}).setdefault("minReplicas", 1)

    def validate(self, obj: Obj) -> list[Cause]:
        out: list[Cause] = []
        spec = obj.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        for f in ("kind", "name"):
            if not ref.get(f):
                out.append(errors.required(f"spec.scaleTargetRef.{f}"))
        lo, hi = spec.get("minReplicas"), spec.get("maxReplicas")
        if isinstance(lo, int) and lo < 1:
            out.append(errors.cause("spec.minReplicas", f"Invalid value: {lo}: must be greater than or equal to 1"))
        if not isinstance(hi, int) or hi < 1:
            out.append(errors.cause("spec.maxReplicas", f"Invalid value: {hi}: must be greater than 0"))
        elif isinstance(lo, int) and hi < lo:
            out.append(errors.cause("spec.maxReplicas", f"Invalid value: {hi}: must be greater than or equal to "
                                    "`minReplicas`"))
        cpu = spec.get("targetCPUUtilizationPercentage")
        if isinstance(cpu, int) and cpu < 1:
            out.append(errors.cause("spec.targetCPUUtilizationPercentage",
                                    f"Invalid value: {cpu}: must be greater than or equal to 1"))
        return out


RESOURCES = [
    ResourceInfo("autoscaling", v.split("/")[1], "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
                 f"io.k8s.api.autoscaling.{v.split('/')[1]}.HorizontalPodAutoscaler", short_names=("hpa",),
                 categories=("all",), subresources=("status",), strategy=HPAStrategy(v))
    for v in (V2, V1)
]
