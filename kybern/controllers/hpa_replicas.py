"""The HorizontalPodAutoscaler's arithmetic (upstream pkg/controller/podautoscaler
replica_calculator.go and the normalisation half of horizontal.go), free of I/O
so it can be tested line by line against upstream's cases.

- `group_pods` sorts pods into ready / unready / missing-metric / ignored.
- `resource_replicas` (Utilization targets) and `plain_replicas` (AverageValue
  targets) turn per-pod usage into a replica proposal: the usage ratio with a
  tolerance, then the conservative re-run that treats missing pods as 100 % (on
  a scale down) or 0 % (on a scale up) and unready pods as 0 % on a scale up.
- `Recommender` remembers recommendations and scale events per HPA and applies
  stabilisation windows and scaling policies (`behavior`), or the legacy rules
  (a 5-minute downscale window, up to max(2x, 4) per step) when there is none.

Metric values are milli-units (CPU millicores, memory milli-bytes), as upstream.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD = 300.0
DELAY_OF_INITIAL_READINESS_STATUS = 30.0
DOWNSCALE_STABILIZATION_WINDOW = 300.0
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0


class MetricsError(Exception):
    """A replica count could not be computed; the message is upstream's."""


@dataclass
class PodMetric:
    value: int  # milli-units
    timestamp: float = 0.0  # epoch seconds
    window: float = 0.0  # seconds


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    from kybern.machinery import meta

    return meta.parse_time(value).timestamp()


def _ready_condition(pod: dict[str, Any]) -> dict[str, Any] | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c
    return None


def group_pods(pods: list[dict[str, Any]], metrics: dict[str, PodMetric], resource: str, *,
               cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
               delay_of_initial_readiness_status: float = DELAY_OF_INITIAL_READINESS_STATUS,
               now: float | None = None) -> tuple[int, set[str], set[str], set[str]]:
    """(ready count, unready, missing, ignored) as upstream's groupPods."""
    now = time.time() if now is None else now
    ready, unready, missing, ignored = 0, set(), set(), set()
    for pod in pods:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        if pod["metadata"].get("deletionTimestamp") or status.get("phase") == "Failed":
            ignored.add(name)
            continue
        if status.get("phase") == "Pending":
            unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            missing.add(name)
            continue
        if resource == "cpu":
            cond = _ready_condition(pod)
            start = _ts(status.get("startTime"))
            if cond is None or start is None:
                is_unready = True
            else:
                transition = _ts(cond.get("lastTransitionTime")) or 0.0
                if start + cpu_initialization_period > now:
                    # still initialising: ignore the sample if unready, or if a whole window
                    # has not passed since readiness changed (it may include start-up CPU)
                    is_unready = cond.get("status") == "False" or metric.timestamp < transition + metric.window
                else:
                    # past initialisation: ignore it only if it has never been ready
                    is_unready = cond.get("status") == "False" and \
                        start + delay_of_initial_readiness_status > transition
            if is_unready:
                unready.add(name)
                continue
        ready += 1
    return ready, unready, missing, ignored


def pod_requests(pods: list[dict[str, Any]], resource: str, container: str = "") -> dict[str, int]:
    """Pod name -> sum of its containers' requests for `resource`, in milli-units."""
    from kybern.node.quantity import parse_quantity

    out = {}
    for pod in pods:
        total = 0
        for c in (pod.get("spec") or {}).get("containers") or []:
            if container and c.get("name") != container:
                continue
            req = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if req is None:
                raise MetricsError(f"missing request for {resource} in container {c.get('name')} of Pod "
                                   f"{pod['metadata']['name']}")
            total += int(parse_quantity(str(req)) * 1000)
        out[pod["metadata"]["name"]] = total
    return out


def utilization_ratio(metrics: dict[str, PodMetric], requests: dict[str, int],
                      target: int) -> tuple[float, int, int]:
    """(usage ratio, utilization %, average raw value) as GetResourceUtilizationRatio."""
    total = req_total = n = 0
    for name, m in metrics.items():
        req = requests.get(name)
        if req is None:
            continue  # a pod we do not know (upstream skips it too)
        total += m.value
        req_total += req
        n += 1
    if req_total == 0:
        raise MetricsError("no metrics returned matched known pods")
    utilization = int(total * 100 / req_total)
    return utilization / target, utilization, total // n


def usage_ratio(metrics: dict[str, PodMetric], target: int) -> tuple[float, int]:
    total = sum(m.value for m in metrics.values())
    usage = total // len(metrics)
    return usage / target, usage


@dataclass
class Proposal:
    replicas: int
    utilization: int | None  # percent of request (Utilization targets)
    raw: int  # average value in milli-units


def resource_replicas(current: int, target_utilization: int, resource: str, pods: list[dict[str, Any]],
                      metrics: dict[str, PodMetric], *, tolerance: float = TOLERANCE, container: str = "",
                      **timing: Any) -> Proposal:
    """GetResourceReplicas: a Utilization target (percent of request)."""
    if not pods:
        raise MetricsError("no pods returned by selector while calculating replica count")
    metrics = dict(metrics)
    ready, unready, missing, ignored = group_pods(pods, metrics, resource, **timing)
    for n in ignored | unready:
        metrics.pop(n, None)
    requests = pod_requests(pods, resource, container)
    if not metrics:
        raise MetricsError("did not receive metrics for targeted pods (pods might be unready)")
    ratio, utilization, raw = utilization_ratio(metrics, requests, target_utilization)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return Proposal(current, utilization, raw)
        return Proposal(math.ceil(ratio * ready), utilization, raw)
    if missing and ratio != 1.0:
        # scale down: missing pods use all of their request (or the target, if above 100 %);
        # scale up: nothing
        fallback = max(100, target_utilization)
        for n in missing:
            metrics[n] = PodMetric(requests[n] * fallback // 100 if ratio < 1.0 else 0)
    if scale_up_with_unready:
        for n in unready:
            metrics[n] = PodMetric(0)
    new_ratio, _, _ = utilization_ratio(metrics, requests, target_utilization)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return Proposal(current, utilization, raw)  # too small a change, or the direction flipped
    new = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and new > current) or (new_ratio > 1.0 and new < current):
        return Proposal(current, utilization, raw)
    return Proposal(new, utilization, raw)


def plain_replicas(current: int, target_usage: int, resource: str, pods: list[dict[str, Any]],
                   metrics: dict[str, PodMetric], *, tolerance: float = TOLERANCE, **timing: Any) -> Proposal:
    """calcPlainMetricReplicas: an AverageValue target (milli-units per pod)."""
    if not pods:
        raise MetricsError("no pods returned by selector while calculating replica count")
    metrics = dict(metrics)
    ready, unready, missing, ignored = group_pods(pods, metrics, resource, **timing)
    for n in ignored | unready:
        metrics.pop(n, None)
    if not metrics:
        raise MetricsError("did not receive metrics for targeted pods (pods might be unready)")
    ratio, usage = usage_ratio(metrics, target_usage)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return Proposal(current, None, usage)
        return Proposal(math.ceil(ratio * ready), None, usage)
    if missing:
        for n in missing:
            metrics[n] = PodMetric(target_usage if ratio < 1.0 else 0)
    if scale_up_with_unready:
        for n in unready:
            metrics[n] = PodMetric(0)
    new_ratio, _ = usage_ratio(metrics, target_usage)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return Proposal(current, None, usage)
    new = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and new > current) or (new_ratio > 1.0 and new < current):
        return Proposal(current, None, usage)
    return Proposal(new, None, usage)


# -- normalisation: stabilisation windows and rate limits ---------------------------------
@dataclass
class _Rec:
    replicas: int
    time: float


@dataclass
class _Event:
    change: int
    time: float
    outdated: bool = False


@dataclass
class Limited:
    """A normalised recommendation and the conditions it sets."""

    replicas: int
    able_reason: str
    able_message: str
    limited: bool
    limited_reason: str
    limited_message: str


WITHIN_RANGE = ("DesiredWithinRange", "the desired count is within the acceptable range")
MATCHES = ("ReadyForNewScale", "recommended size matches current size")
DOWN_STABILIZED = ("ScaleDownStabilized", ("recent recommendations were higher than current one, "
                                           "applying the highest recent recommendation"))
UP_STABILIZED = ("ScaleUpStabilized", ("recent recommendations were lower than current one, "
                                       "applying the lowest recent recommendation"))
UP_LIMIT = ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
DOWN_LIMIT = ("ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate")
TOO_MANY = ("TooManyReplicas", "the desired replica count is more than the maximum replica count")
TOO_FEW = ("TooFewReplicas", "the desired replica count is less than the minimum replica count")


def _change_in_period(period: float, events: list[_Event], now: float) -> int:
    cutoff = now - period
    return sum(e.change for e in events if e.time > cutoff)


def scale_up_limit(current: int, events: list[_Event], rules: dict[str, Any], now: float) -> int:
    """calculateScaleUpLimitWithScalingRules."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    results = []
    for p in rules.get("policies") or []:
        start = current - _change_in_period(p.get("periodSeconds", 15), events, now)
        if p.get("type") == "Pods":
            results.append(start + p.get("value", 0))
        else:
            results.append(math.ceil(start * (1 + p.get("value", 0) / 100)))
    if not results:
        return 2 ** 31 - 1 if select != "Min" else current
    return min(results) if select == "Min" else max(results)


def scale_down_limit(current: int, events: list[_Event], rules: dict[str, Any], now: float) -> int:
    """calculateScaleDownLimitWithBehaviors (Min picks the largest floor: the smallest change)."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    results = []
    for p in rules.get("policies") or []:
        start = current + _change_in_period(p.get("periodSeconds", 15), events, now)
        if p.get("type") == "Pods":
            results.append(start - p.get("value", 0))
        else:
            results.append(int(start * (1 - p.get("value", 0) / 100)))
    if not results:
        return -(2 ** 31) if select != "Min" else current
    return max(results) if select == "Min" else min(results)


@dataclass
class Recommender:
    """Per-HPA memory of recommendations and scale events (upstream keeps both in
    the controller; a restart forgets them, as there)."""

    downscale_window: float = DOWNSCALE_STABILIZATION_WINDOW
    recommendations: dict[str, list[_Rec]] = field(default_factory=dict)
    up_events: dict[str, list[_Event]] = field(default_factory=dict)
    down_events: dict[str, list[_Event]] = field(default_factory=dict)

    def forget(self, key: str) -> None:
        for d in (self.recommendations, self.up_events, self.down_events):
            d.pop(key, None)

    def record_initial(self, key: str, current: int, now: float) -> None:
        self.recommendations.setdefault(key, [_Rec(current, now)])

    def _record(self, key: str, replicas: int, now: float, old_index: int | None) -> None:
        recs = self.recommendations.setdefault(key, [])
        if old_index is not None:
            recs[old_index] = _Rec(replicas, now)
        else:
            recs.append(_Rec(replicas, now))

    # -- without behavior (normalizeDesiredReplicas) ----------------------------------
    def normalize(self, key: str, current: int, desired: int, lo: int, hi: int, now: float) -> Limited:
        cutoff = now - self.downscale_window
        stabilized, old = desired, None
        for i, r in enumerate(self.recommendations.get(key, [])):
            if r.time < cutoff:
                old = i
            elif r.replicas > stabilized:
                stabilized = r.replicas
        self._record(key, desired, now, old)
        able = DOWN_STABILIZED if stabilized != desired else MATCHES
        scale_up_cap = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
        if hi > scale_up_cap:
            top, why = scale_up_cap, UP_LIMIT
        else:
            top, why = hi, TOO_MANY
        if stabilized < lo:
            out, why = lo, TOO_FEW
        elif stabilized > top:
            out = top
        else:
            out, why = stabilized, WITHIN_RANGE
        return Limited(out, *able, out != stabilized, *why)

    # -- with behavior (normalizeDesiredReplicasWithBehaviors) --------------------------
    def normalize_with_behavior(self, key: str, current: int, desired: int, lo: int, hi: int,
                                behavior: dict[str, Any], now: float) -> Limited:
        up = behavior.get("scaleUp") or {}
        down = behavior.get("scaleDown") or {}
        up_window = up.get("stabilizationWindowSeconds", 0)
        down_window = down.get("stabilizationWindowSeconds")
        if down_window is None:
            down_window = self.downscale_window
        up_cutoff, down_cutoff = now - up_window, now - down_window
        up_rec = down_rec = desired
        old = None
        for i, r in enumerate(self.recommendations.get(key, [])):
            if r.time > up_cutoff:
                up_rec = min(up_rec, r.replicas)
            if r.time > down_cutoff:
                down_rec = max(down_rec, r.replicas)
            if r.time < up_cutoff and r.time < down_cutoff:
                old = i
        stabilized = max(current, up_rec)
        stabilized = min(stabilized, down_rec)
        self._record(key, desired, now, old)
        if stabilized != desired:
            able = UP_STABILIZED if desired >= current else DOWN_STABILIZED
        else:
            able = MATCHES
        out, why = stabilized, WITHIN_RANGE
        if stabilized > current:
            limit = max(scale_up_limit(current, self.up_events.get(key, []), up, now), current)
            if hi > limit:
                top, reason = limit, UP_LIMIT
            else:
                top, reason = hi, TOO_MANY
            if stabilized > top:
                out, why = top, reason
        elif stabilized < current:
            limit = min(scale_down_limit(current, self.down_events.get(key, []), down, now), current)
            if lo < limit:
                bottom, reason = limit, DOWN_LIMIT
            else:
                bottom, reason = lo, TOO_FEW
            if stabilized < bottom:
                out, why = bottom, reason
        return Limited(out, *able, out != stabilized, *why)

    def store_scale_event(self, key: str, behavior: dict[str, Any] | None, prev: int, new: int,
                          now: float) -> None:
        """storeScaleEvent: remember a change so the policies' periods can count it."""
        if behavior is None or prev == new:
            return
        rules = (behavior.get("scaleUp") if new > prev else behavior.get("scaleDown")) or {}
        events = (self.up_events if new > prev else self.down_events).setdefault(key, [])
        longest = max([p.get("periodSeconds", 15) for p in rules.get("policies") or []] or [0])
        for e in events:
            if e.time < now - longest:
                e.outdated = True
        ev = _Event(abs(new - prev), now)
        for i, e in enumerate(events):
            if e.outdated:
                events[i] = ev
                return
        events.append(ev)
