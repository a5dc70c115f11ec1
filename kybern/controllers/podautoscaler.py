"""The HorizontalPodAutoscaler controller (upstream pkg/controller/podautoscaler,
horizontal.go): every sync period, for each HPA (read as autoscaling/v2; v1
objects are stored converted), read the target's scale subresource, ask the
resource metrics API (metrics.k8s.io) for its pods' usage, compute a replica
count per metric (hpa_replicas.py), take the largest, stabilise and rate-limit
it, write the target's scale and the HPA's status.

Conditions and events use upstream's reasons and messages: AbleToScale
(SucceededGetScale, FailedGetScale, ReadyForNewScale, ScaleDownStabilized,
ScaleUpStabilized, SucceededRescale, FailedUpdateScale), ScalingActive
(ValidMetricFound, FailedGetResourceMetric, InvalidSelector, ScalingDisabled),
ScalingLimited (DesiredWithinRange, TooFewReplicas, TooManyReplicas,
ScaleUpLimit, ScaleDownLimit); events SuccessfulRescale "New size: N; reason:
...", FailedGetScale, FailedGetResourceMetric, FailedComputeMetricsReplicas.

Knobs (kube-controller-manager flags upstream) are constructor arguments with
environment overrides, so tests can shorten them: KYBERN_HPA_SYNC_PERIOD (15 s),
KYBERN_HPA_DOWNSCALE_STABILIZATION (300 s), KYBERN_HPA_CPU_INITIALIZATION_PERIOD
(300 s), KYBERN_HPA_INITIAL_READINESS_DELAY (30 s), KYBERN_HPA_TOLERANCE (0.1).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from decimal import Decimal
from typing import Any

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import PODS, Resource
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.controllers import hpa_replicas as calc
from kybern.machinery import errors, meta, selectors
from kybern.node.quantity import parse_quantity

log = logging.getLogger(__name__)

HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
POD_METRICS_PATH = "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods"


def _env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


def decimal_quantity(milli: int) -> str:
    """resource.NewMilliQuantity(v, DecimalSI).String(): "250m", "1", "14M"."""
    if milli % 1000:
        return f"{milli}m"
    n = milli // 1000
    if n == 0:
        return "0"
    suffixes = ["", "k", "M", "G", "T", "P", "E"]
    i = 0
    while n % 1000 == 0 and i < len(suffixes) - 1:
        n //= 1000
        i += 1
    return f"{n}{suffixes[i]}"


def _milli(q: Any) -> int:
    return math.ceil(parse_quantity(str(q)) * Decimal(1000))


def set_condition(hpa: dict[str, Any], typ: str, status: bool, reason: str, message: str) -> None:
    """setCondition: lastTransitionTime moves only when the status flips."""
    conds = hpa.setdefault("status", {}).setdefault("conditions", [])
    value = "True" if status else "False"
    for c in conds:
        if c.get("type") == typ:
            if c.get("status") != value:
                c["lastTransitionTime"] = meta.now()
            c.update(status=value, reason=reason, message=message)
            return
    conds.append({"type": typ, "status": value, "lastTransitionTime": meta.now(), "reason": reason,
                  "message": message})


class ScaleTargetError(Exception):
    pass


class HorizontalPodAutoscalerController:
    name = "horizontalpodautoscaling"

    def __init__(self, client: Client, informers: InformerFactory, *, sync_period: float | None = None,
                 tolerance: float | None = None, cpu_initialization_period: float | None = None,
                 delay_of_initial_readiness_status: float | None = None,
                 downscale_stabilization: float | None = None, workers: int = 2) -> None:
        self.client = client
        self.hpas = informers.informer(HPAS)
        self.pods = informers.informer(PODS)
        self.sync_period = sync_period if sync_period is not None else _env("KYBERN_HPA_SYNC_PERIOD", 15.0)
        self.tolerance = tolerance if tolerance is not None else _env("KYBERN_HPA_TOLERANCE", calc.TOLERANCE)
        self.timing = {
            "cpu_initialization_period": cpu_initialization_period if cpu_initialization_period is not None
            else _env("KYBERN_HPA_CPU_INITIALIZATION_PERIOD", calc.CPU_INITIALIZATION_PERIOD),
            "delay_of_initial_readiness_status": delay_of_initial_readiness_status
            if delay_of_initial_readiness_status is not None
            else _env("KYBERN_HPA_INITIAL_READINESS_DELAY", calc.DELAY_OF_INITIAL_READINESS_STATUS)}
        window = downscale_stabilization if downscale_stabilization is not None else \
            _env("KYBERN_HPA_DOWNSCALE_STABILIZATION", calc.DOWNSCALE_STABILIZATION_WINDOW)
        self.recommender = calc.Recommender(window)
        self.workers = workers
        self.queue = WorkQueue("horizontalpodautoscaler")
        self.recorder = EventRecorder(client, "horizontal-pod-autoscaler")
        self._resources: dict[tuple[str, str], Resource] = {}
        self.hpas.add_handler(self._on_hpa)

    async def run(self) -> None:
        await self.hpas.wait_synced()
        await self.pods.wait_synced()
        await run_workers(self.queue, self.reconcile, self.workers)

    def _on_hpa(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        key = key_of(new)
        if typ == "DELETED":
            self.recommender.forget(key)
        elif typ == "ADDED" or (old or {}).get("spec") != new.get("spec"):
            self.queue.add(key)  # new or changed spec: now; otherwise the sync period paces us

    async def reconcile(self, key: str) -> None:
        hpa = self.hpas.get(key)
        if hpa is None:
            self.recommender.forget(key)
            return
        try:
            await self.reconcile_autoscaler(copy.deepcopy(hpa), key)
        except Exception as e:  # noqa: BLE001 - upstream retries at the next sync period, not sooner
            log.debug("hpa %s: %s", key, e)
        self.queue.add_after(key, self.sync_period)

    # -- the target -------------------------------------------------------------
    async def _resource_for(self, api_version: str, kind: str) -> Resource:
        """The REST resource of a kind that has a scale subresource, from discovery
        (so custom resources with /scale work too)."""
        found = self._resources.get((api_version, kind))
        if found is not None:
            return found
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            doc = await self.client.request("GET", path)
        except errors.StatusError:
            doc = {}
        names = {r.get("name") for r in (doc or {}).get("resources") or []}
        for r in (doc or {}).get("resources") or []:
            if r.get("kind") == kind and "/" not in r["name"] and f"{r['name']}/scale" in names:
                res = Resource(group, version, r["name"], kind, namespaced=bool(r.get("namespaced", True)))
                self._resources[(api_version, kind)] = res
                return res
        raise ScaleTargetError(f'no matches for kind "{kind}" in group "{group}"')

    # -- one pass ---------------------------------------------------------------------
    async def reconcile_autoscaler(self, hpa: dict[str, Any], key: str) -> None:
        hpa["kind"], hpa["apiVersion"] = HPAS.kind, HPAS.api_version
        original = copy.deepcopy(hpa.get("status") or {})
        spec = hpa.get("spec") or {}
        ns = hpa["metadata"].get("namespace")
        ref = spec.get("scaleTargetRef") or {}
        reference = f"{ref.get('kind')}/{ns}/{ref.get('name')}"
        try:
            res = await self._resource_for(ref.get("apiVersion") or "v1", ref.get("kind") or "")
            scale = await self.client.get(res, ref.get("name") or "", ns, subresource="scale")
        except (ScaleTargetError, errors.StatusError) as e:
            msg = e.message if isinstance(e, errors.StatusError) else str(e)
            self.recorder.event(hpa, "Warning", "FailedGetScale", msg)
            set_condition(hpa, "AbleToScale", False, "FailedGetScale",
                          f"the HPA controller was unable to get the target's current scale: {msg}")
            await self._update_status(hpa, original)
            raise RuntimeError(f"failed to query scale subresource for {reference}: {msg}") from None
        set_condition(hpa, "AbleToScale", True, "SucceededGetScale",
                      "the HPA controller was able to get the target's current scale")
        now = time.time()
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        self.recommender.record_initial(key, current, now)
        lo = spec.get("minReplicas", 1)
        hi = spec.get("maxReplicas", 1)
        statuses: list[dict[str, Any]] = []  # cleared unless metrics are computed, as upstream
        desired, reason = 0, ""
        if current == 0 and lo != 0:
            set_condition(hpa, "ScalingActive", False, "ScalingDisabled",
                          "scaling is disabled since the replica count of the target is zero")
        elif current > hi:
            desired, reason = hi, "Current number of replicas above Spec.MaxReplicas"
        elif current < lo:
            desired, reason = lo, "Current number of replicas below Spec.MinReplicas"
        else:
            proposal, metric_name, statuses, err = await self.compute_replicas_for_metrics(hpa, scale)
            if proposal == -1:
                self._set_status(hpa, current, hpa["status"].get("desiredReplicas", 0), statuses, False)
                await self._update_status(hpa, original)
                self.recorder.event(hpa, "Warning", "FailedComputeMetricsReplicas", err)
                raise RuntimeError(f"failed to compute desired number of replicas based on listed metrics for "
                                   f"{reference}: {err}")
            rescale_metric = ""
            if proposal > desired:
                desired, rescale_metric = proposal, metric_name
            if desired > current:
                reason = f"{rescale_metric} above target"
            if desired < current:
                reason = "All metrics below target"
            behavior = spec.get("behavior")
            if behavior is None:
                lim = self.recommender.normalize(key, current, desired, lo, hi, now)
            else:
                lim = self.recommender.normalize_with_behavior(key, current, desired, lo, hi, behavior, now)
            set_condition(hpa, "AbleToScale", True, lim.able_reason, lim.able_message)
            set_condition(hpa, "ScalingLimited", lim.limited, lim.limited_reason, lim.limited_message)
            desired = lim.replicas
        rescale = desired != current
        if rescale:
            scale["spec"]["replicas"] = desired
            try:
                await self.client.update(res, scale, subresource="scale")
            except errors.StatusError as e:
                self.recorder.event(hpa, "Warning", "FailedRescale",
                                    f"New size: {desired}; reason: {reason}; error: {e.message}")
                set_condition(hpa, "AbleToScale", False, "FailedUpdateScale",
                              f"the HPA controller was unable to update the target scale: {e.message}")
                self._set_status(hpa, current, hpa["status"].get("desiredReplicas", 0), statuses, False)
                await self._update_status(hpa, original)
                raise
            set_condition(hpa, "AbleToScale", True, "SucceededRescale",
                          f"the HPA controller was able to update the target scale to {desired}")
            self.recorder.event(hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
            self.recommender.store_scale_event(key, spec.get("behavior"), current, desired, now)
            log.info("hpa %s: scaled %s from %d to %d (%s)", key, reference, current, desired, reason)
        else:
            desired = current
        self._set_status(hpa, current, desired, statuses, rescale)
        await self._update_status(hpa, original)

    @staticmethod
    def _set_status(hpa: dict[str, Any], current: int, desired: int, metrics: list[dict[str, Any]],
                    rescale: bool) -> None:
        st = hpa.setdefault("status", {})
        st["currentReplicas"] = current
        st["desiredReplicas"] = desired
        if metrics:
            st["currentMetrics"] = metrics
        else:
            st.pop("currentMetrics", None)
        if rescale:
            st["lastScaleTime"] = meta.now()

    async def _update_status(self, hpa: dict[str, Any], original: dict[str, Any]) -> None:
        if hpa.get("status") == original:
            return
        await self.client.update(HPAS, hpa, subresource="status")

    # -- metrics ------------------------------------------------------------------
    async def compute_replicas_for_metrics(self, hpa: dict[str, Any], scale: dict[str, Any]
                                           ) -> tuple[int, str, list[dict[str, Any]], str]:
        """(replicas or -1, metric name, statuses, error message)."""
        specs = (hpa.get("spec") or {}).get("metrics") or []
        raw_selector = (scale.get("status") or {}).get("selector") or ""
        if not raw_selector:
            self.recorder.event(hpa, "Warning", "SelectorRequired", "selector is required")
            set_condition(hpa, "ScalingActive", False, "InvalidSelector",
                          "the HPA target's scale is missing a selector")
            return -1, "", [], "selector is required"
        try:
            selector = selectors.parse_label_selector(raw_selector)
        except Exception as e:  # noqa: BLE001 - any parse failure is an invalid selector
            msg = f"couldn't convert selector into a corresponding internal selector object: {e}"
            self.recorder.event(hpa, "Warning", "InvalidSelector", msg)
            set_condition(hpa, "ScalingActive", False, "InvalidSelector",
                          "the HPA target's scale has an invalid selector")
            return -1, "", [], msg
        ns = hpa["metadata"].get("namespace")
        pods = [p for p in self.pods.list(ns) if selectors.matches(selector, p["metadata"].get("labels"))]
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        statuses: list[dict[str, Any]] = [{"type": ""} for _ in specs]
        replicas, metric, invalid, first_err = 0, "", 0, ""
        first_cond: tuple[str, str] | None = None
        for i, spec in enumerate(specs):
            try:
                proposal, name, statuses[i] = await self._replicas_for_metric(
                    hpa, spec, current, ns, raw_selector, pods)
            except calc.MetricsError as e:
                if invalid == 0:
                    first_err = str(e)
                    first_cond = getattr(e, "condition", None)
                invalid += 1
                continue
            if replicas == 0 or proposal > replicas:
                replicas, metric = proposal, name
        err = ""
        if invalid:
            err = f"invalid metrics ({invalid} invalid out of {len(specs)}), first error is: {first_err}"
        if specs and (invalid >= len(specs) or (invalid and replicas < current)):
            if first_cond is not None:
                set_condition(hpa, "ScalingActive", False, *first_cond)
            return -1, "", statuses, err
        set_condition(hpa, "ScalingActive", True, "ValidMetricFound",
                      f"the HPA was able to successfully calculate a replica count from {metric}")
        return replicas, metric, statuses, err

    async def _replicas_for_metric(self, hpa: dict[str, Any], spec: dict[str, Any], current: int, ns: str,
                                   selector: str, pods: list[dict[str, Any]]
                                   ) -> tuple[int, str, dict[str, Any]]:
        typ = spec.get("type")
        if typ not in ("Resource", "ContainerResource"):
            reason = {"Pods": "FailedGetPodsMetric", "Object": "FailedGetObjectMetric",
                      "External": "FailedGetExternalMetric"}.get(typ or "", "InvalidMetricSourceType")
            src = spec.get((typ or "")[:1].lower() + (typ or "")[1:]) or {}
            name = (src.get("metric") or {}).get("name", "")
            msg = f"unable to get metric {name}: no custom or external metrics API is served by kybern" \
                if reason != "InvalidMetricSourceType" else f"unknown metric source type \"{typ}\""
            raise self._unable(hpa, reason, msg, f"failed to get {typ} metric: {msg}" if typ else msg)
        key = "resource" if typ == "Resource" else "containerResource"
        src = spec.get(key) or {}
        resource, container = src.get("name", ""), src.get("container", "") if typ == "ContainerResource" else ""
        target = src.get("target") or {}
        reason = "FailedGetResourceMetric" if typ == "Resource" else "FailedGetContainerResourceMetric"
        wrap = f"failed to get {resource} resource metric value" if typ == "Resource" else \
            f"failed to get {resource} container metric value"
        try:
            if target.get("averageValue") is not None:
                try:
                    metrics = await self._pod_metrics(ns, selector, resource, container)
                    p = calc.plain_replicas(current, _milli(target["averageValue"]), resource, pods, metrics,
                                            tolerance=self.tolerance, **self.timing)
                except calc.MetricsError as e:
                    raise calc.MetricsError(f"failed to get {resource} usage: {e}") from None
                current_status: dict[str, Any] = {"averageValue": decimal_quantity(p.raw)}
                name = f"{resource} resource"
            elif target.get("averageUtilization") is not None:
                try:
                    metrics = await self._pod_metrics(ns, selector, resource, container)
                    p = calc.resource_replicas(current, int(target["averageUtilization"]), resource, pods, metrics,
                                               tolerance=self.tolerance, container=container, **self.timing)
                except calc.MetricsError as e:
                    raise calc.MetricsError(f"failed to get {resource} utilization: {e}") from None
                current_status = {"averageUtilization": p.utilization, "averageValue": decimal_quantity(p.raw)}
                name = f"{resource} resource utilization (percentage of request)" if typ == "Resource" else \
                    f"{resource} container resource utilization (percentage of request)"
            else:
                raise calc.MetricsError("invalid resource metric source: neither an average utilization target "
                                        "nor an average value (usage) target was set")
        except calc.MetricsError as e:
            raise self._unable(hpa, reason, str(e), f"{wrap}: {e}") from None
        status: dict[str, Any] = {"name": resource, "current": current_status}
        if container:
            status["container"] = container
        return p.replicas, name, {"type": typ, key: status}

    def _unable(self, hpa: dict[str, Any], reason: str, cause: str, wrapped: str) -> calc.MetricsError:
        """getUnableComputeReplicaCountCondition: an event, and the condition to set
        if every metric fails."""
        self.recorder.event(hpa, "Warning", reason, cause)
        err = calc.MetricsError(wrapped)
        err.condition = (reason, f"the HPA was unable to compute the replica count: {cause}")  # type: ignore[attr-defined]
        return err

    async def _pod_metrics(self, ns: str, selector: str, resource: str, container: str
                           ) -> dict[str, calc.PodMetric]:
        """GetResourceMetric: pod name -> usage (milli-units) from metrics.k8s.io."""
        try:
            lst = await self.client.request("GET", POD_METRICS_PATH.format(ns=ns),
                                            params={"labelSelector": selector})
        except errors.StatusError as e:
            raise calc.MetricsError(f"unable to get metrics for resource {resource}: unable to fetch metrics "
                                    f"from resource metrics API: {e.message}") from None
        items = (lst or {}).get("items") or []
        if not items:
            raise calc.MetricsError(f"unable to get metrics for resource {resource}: no metrics returned from "
                                    f"resource metrics API")
        out: dict[str, calc.PodMetric] = {}
        for m in items:
            total, missing = 0, False
            for c in m.get("containers") or []:
                if container and c.get("name") != container:
                    continue
                v = (c.get("usage") or {}).get(resource)
                if v is None:
                    missing = True
                    break
                total += _milli(v)
            if missing:
                continue
            ts = meta.parse_time(m["timestamp"]).timestamp() if m.get("timestamp") else time.time()
            out[m["metadata"]["name"]] = calc.PodMetric(total, ts, _duration(m.get("window") or "0s"))
        return out


def _duration(s: str) -> float:
    """Go duration strings as metrics-server writes them ("10.5s", "1m0s", "500ms")."""
    import re

    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)(ms|us|µs|ns|h|m|s)", s):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}[unit]
    return total
