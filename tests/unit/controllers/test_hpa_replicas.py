"""The HPA's arithmetic against upstream's replica_calculator_test.go and
horizontal_test.go cases: usage ratio and tolerance, unready and missing pods,
the CPU initialisation period, stabilisation windows and scaling policies."""

from __future__ import annotations

import time

import pytest

from kybern.controllers import hpa_replicas as calc
from kybern.controllers.hpa_replicas import PodMetric, Recommender
from kybern.controllers.podautoscaler import _duration, decimal_quantity

NOW = time.time()
T0 = "2020-01-01T00:00:00Z"  # long ago: past the CPU initialisation period


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def pod(name: str, cpu: str = "1", *, phase: str = "Running", ready: str = "True", start: str = T0,
        transition: str = T0, deleting: bool = False) -> dict:
    p = {"metadata": {"name": name},
         "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
         "status": {"phase": phase, "startTime": start,
                    "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": transition}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = T0
    return p


def metrics(**levels: int) -> dict[str, PodMetric]:
    return {k: PodMetric(v, NOW, 30.0) for k, v in levels.items()}


def test_scale_up_and_down_by_ratio_of_sums() -> None:
    pods = [pod("a"), pod("b"), pod("c")]
    p = calc.resource_replicas(3, 30, "cpu", pods, metrics(a=300, b=500, c=700))
    assert (p.replicas, p.utilization, p.raw) == (5, 50, 500)
    pods5 = [pod(n) for n in "abcde"]
    p = calc.resource_replicas(5, 50, "cpu", pods5, metrics(a=100, b=300, c=500, d=250, e=250))
    assert (p.replicas, p.utilization, p.raw) == (3, 28, 280)


def test_tolerance_keeps_the_current_count() -> None:
    pods = [pod("a", "0.9"), pod("b", "1.0"), pod("c", "1.1")]
    p = calc.resource_replicas(3, 100, "cpu", pods, metrics(a=1010, b=1030, c=1020))
    assert p.replicas == 3 and p.utilization == 102


def test_unready_pods_count_as_zero_on_a_scale_up() -> None:
    pods = [pod("a", ready="False"), pod("b"), pod("c")]
    p = calc.resource_replicas(3, 30, "cpu", pods, metrics(a=300, b=500, c=700))
    assert (p.replicas, p.utilization, p.raw) == (4, 60, 600)
    # pending pods are unready too
    pods = [pod("a", phase="Pending"), pod("b"), pod("c")]
    assert calc.resource_replicas(3, 30, "cpu", pods, metrics(b=500, c=700)).replicas == 4


def test_deleting_and_failed_pods_are_ignored() -> None:
    pods = [pod("a", deleting=True), pod("b", phase="Failed"), pod("c")]
    p = calc.resource_replicas(1, 50, "cpu", pods, metrics(a=900, b=900, c=1000))
    assert p.replicas == 2 and p.utilization == 100


def test_missing_metrics() -> None:
    # a scale down treats a pod without metrics as using its whole request: no change here
    pods = [pod("a"), pod("b")]
    assert calc.resource_replicas(2, 100, "cpu", pods, metrics(a=400)).replicas == 2
    # ... and only softens it here
    pods4 = [pod(n) for n in "abcd"]
    assert calc.resource_replicas(4, 100, "cpu", pods4, metrics(a=100, b=100, c=100)).replicas == 2  # not 1
    # a scale up treats it as using nothing
    p = calc.resource_replicas(2, 50, "cpu", pods, metrics(a=1000))
    assert p.replicas == 2 and p.utilization == 100  # 1000/2000 = 50 %: the same count
    p = calc.resource_replicas(3, 50, "cpu", [pod(n) for n in "abc"], metrics(a=1500, b=1500))
    assert p.replicas == 6


def test_cpu_initialization_period_and_initial_readiness() -> None:
    young = stamp(NOW - 60)
    # within the initialisation period, a sample taken before one window after becoming ready is ignored
    fresh = pod("a", start=young, transition=stamp(NOW - 10))
    ready, unready, _missing, _ignored = calc.group_pods([fresh], metrics(a=1), "cpu", now=NOW)
    assert (ready, unready) == (0, {"a"})
    settled = pod("a", start=young, transition=stamp(NOW - 40))
    assert calc.group_pods([settled], metrics(a=1), "cpu", now=NOW)[0] == 1
    # memory is not subject to it
    assert calc.group_pods([fresh], metrics(a=1), "memory", now=NOW)[0] == 1
    # past it: unready pods count unless they have never been ready (went unready within the delay)
    never = pod("a", ready="False", start=stamp(NOW - 600), transition=stamp(NOW - 590))
    assert calc.group_pods([never], metrics(a=1), "cpu", now=NOW)[1] == {"a"}
    was = pod("a", ready="False", start=stamp(NOW - 600), transition=stamp(NOW - 100))
    assert calc.group_pods([was], metrics(a=1), "cpu", now=NOW)[0] == 1
    # the parameters are honoured
    assert calc.group_pods([fresh], metrics(a=1), "cpu", now=NOW, cpu_initialization_period=30)[0] == 1


def test_errors_have_upstream_messages() -> None:
    with pytest.raises(calc.MetricsError, match="no pods returned by selector"):
        calc.resource_replicas(1, 50, "cpu", [], {})
    nocpu = {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"}}
    with pytest.raises(calc.MetricsError, match="missing request for memory in container c of Pod x"):
        calc.resource_replicas(1, 50, "memory", [nocpu], metrics(x=1))
    with pytest.raises(calc.MetricsError, match="did not receive metrics for targeted pods"):
        calc.resource_replicas(1, 50, "cpu", [pod("a", phase="Pending")], metrics())


def test_average_value_targets() -> None:
    pods = [pod("a"), pod("b"), pod("c")]
    p = calc.plain_replicas(3, 500, "cpu", pods, metrics(a=300, b=500, c=700))
    assert (p.replicas, p.utilization, p.raw) == (3, None, 500)
    p = calc.plain_replicas(3, 250, "memory", pods, metrics(a=300, b=500, c=700))
    assert p.replicas == 6 and p.raw == 500


def test_legacy_normalization_window_and_rate() -> None:
    r = Recommender(downscale_window=300)
    r.record_initial("k", 5, NOW - 100)
    got = r.normalize("k", 5, 2, 1, 10, NOW)
    assert got.replicas == 5 and got.able_reason == "ScaleDownStabilized" and not got.limited
    got = r.normalize("k", 5, 2, 1, 10, NOW + 301)  # both older recommendations left the window... 
    assert got.replicas == 2 and got.able_reason == "ReadyForNewScale"
    # a scale up goes at most to max(2 * current, 4)
    got = Recommender().normalize("u", 3, 10, 1, 20, NOW)
    assert (got.replicas, got.limited, got.limited_reason) == (6, True, "ScaleUpLimit")
    got = Recommender().normalize("u", 3, 10, 1, 5, NOW)
    assert (got.replicas, got.limited_reason) == (5, "TooManyReplicas")
    got = Recommender().normalize("u", 3, 0, 2, 5, NOW)
    assert (got.replicas, got.limited_reason) == (2, "TooFewReplicas")


DEFAULT_BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                             {"type": "Percent", "value": 100, "periodSeconds": 15}]},
    "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                  "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}


def test_policies_limit_the_rate() -> None:
    assert calc.scale_up_limit(1, [], DEFAULT_BEHAVIOR["scaleUp"], NOW) == 5
    assert calc.scale_up_limit(10, [], DEFAULT_BEHAVIOR["scaleUp"], NOW) == 20
    assert calc.scale_up_limit(10, [], {**DEFAULT_BEHAVIOR["scaleUp"], "selectPolicy": "Min"}, NOW) == 14
    assert calc.scale_up_limit(10, [], {"selectPolicy": "Disabled"}, NOW) == 10
    assert calc.scale_down_limit(10, [], DEFAULT_BEHAVIOR["scaleDown"], NOW) == 0
    one_pod = {"selectPolicy": "Max", "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}
    events = [calc._Event(1, NOW - 10)]  # 5 -> 4 ten seconds ago: the period's budget is spent
    assert calc.scale_down_limit(4, events, one_pod, NOW) == 4
    assert calc.scale_down_limit(4, [calc._Event(1, NOW - 61)], one_pod, NOW) == 3


def test_behavior_stabilization_and_limits() -> None:
    r = Recommender()
    r.record_initial("k", 5, NOW - 100)
    got = r.normalize_with_behavior("k", 5, 2, 1, 10, DEFAULT_BEHAVIOR, NOW)
    assert got.replicas == 5 and got.able_reason == "ScaleDownStabilized"
    quick = {**DEFAULT_BEHAVIOR, "scaleDown": {**DEFAULT_BEHAVIOR["scaleDown"], "stabilizationWindowSeconds": 0}}
    got = Recommender().normalize_with_behavior("q", 5, 2, 1, 10, quick, NOW)
    assert got.replicas == 2 and got.able_reason == "ReadyForNewScale"
    slow = {**quick, "scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                   "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    r = Recommender()
    got = r.normalize_with_behavior("s", 5, 2, 1, 10, slow, NOW)
    assert (got.replicas, got.limited, got.limited_reason) == (4, True, "ScaleDownLimit")
    r.store_scale_event("s", slow, 5, 4, NOW)
    got = r.normalize_with_behavior("s", 4, 2, 1, 10, slow, NOW + 5)
    assert got.replicas == 4  # the one-pod budget of this minute is used
    # scale up: 1 -> at most 5 (4 pods or 100 % per 15 s, whichever is more), capped by max
    got = Recommender().normalize_with_behavior("u", 1, 10, 1, 8, DEFAULT_BEHAVIOR, NOW)
    assert (got.replicas, got.limited_reason) == (5, "ScaleUpLimit")
    got = Recommender().normalize_with_behavior("u", 1, 10, 1, 3, DEFAULT_BEHAVIOR, NOW)
    assert (got.replicas, got.limited_reason) == (3, "TooManyReplicas")


def test_quantities_and_durations() -> None:
    assert [decimal_quantity(v) for v in (250, 1000, 0, 14_000_000_000, 1500)] == ["250m", "1", "0", "14M", "1500m"]
    assert _duration("10.5s") == 10.5 and _duration("1m0s") == 60 and _duration("500ms") == 0.5
