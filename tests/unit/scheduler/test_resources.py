"""Quantities and pod requests as the scheduler counts them."""

import pytest

from kybern.scheduler.resources import amount, parse_quantity, pod_requests


def test_quantities():
    assert amount("cpu", "100m") == 100
    assert amount("cpu", "1.5") == 1500
    assert amount("cpu", 2) == 2000
    assert amount("memory", "1Gi") == 2**30
    assert amount("memory", "128M") == 128_000_000
    assert amount("memory", "1e3") == 1000
    assert amount("cpu", "1u") == 1  # rounds up to a millicore
    with pytest.raises(ValueError):
        parse_quantity("lots")


def c(cpu=None, mem=None, limits=None, **kw):
    req = {}
    if cpu:
        req["cpu"] = cpu
    if mem:
        req["memory"] = mem
    out = {"name": "x", "resources": {"requests": req}}
    if limits:
        out["resources"]["limits"] = limits
    out.update(kw)
    return out


def test_containers_add_up_and_limits_stand_in():
    p = {"spec": {"containers": [c("100m", "64Mi"), c(limits={"cpu": "200m"})]}}
    assert pod_requests(p) == {"cpu": 300, "memory": 64 * 2**20}


def test_init_containers_are_a_peak_sidecars_add():
    p = {"spec": {"containers": [c("100m")],
                  "initContainers": [c("500m"), c("50m", restartPolicy="Always"), c("200m")]}}
    # sidecar: 100 + 50 = 150 steady; peaks 500 and 200+50; max -> 500
    assert pod_requests(p)["cpu"] == 500
    p = {"spec": {"containers": [c("1")], "initContainers": [c("500m")], "overhead": {"cpu": "10m"}}}
    assert pod_requests(p)["cpu"] == 1010


def test_non_zero_defaults_for_scoring():
    p = {"spec": {"containers": [c()]}}
    assert pod_requests(p) == {}
    nz = pod_requests(p, non_zero=True)
    assert nz["cpu"] == 100 and nz["memory"] == 200 * 2**20
