"""`kubectl delete --grace-period=N` gives the pod N seconds, longer or shorter than
its spec's terminationGracePeriodSeconds, as the kubelet does (it stops containers
with the deletion's grace period when there is one)."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.e2e

# ignores SIGTERM, so only the grace period's end (SIGKILL) stops it
STUBBORN = "trap '' TERM; echo up; while true; do sleep 0.2; done"


def stubborn_pod(name: str, grace: int) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": grace,
        "containers": [{"name": "c", "image": "demo:v1", "command": ["sh", "-c", STUBBORN]}]}})


def gone_after(cluster, ns: str, name: str, *delete_args: str) -> float:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=stubborn_pod(name, 1))
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", ns, "--timeout=30s")
    t0 = time.monotonic()
    cluster.kubectl("delete", "pod", name, "-n", ns, "--wait=false", *delete_args)
    cluster.wait_for(lambda: cluster.kubectl("get", "pod", name, "-n", ns, check=False).returncode != 0,
                     timeout=30, what=f"pod {name} gone")
    return time.monotonic() - t0


def test_a_longer_grace_period_than_the_spec_is_honoured(cluster, namespace):
    # the spec says 1 s; the deletion asks for 4 s: the container (deaf to SIGTERM) lives on till then
    took = gone_after(cluster, namespace, "longer", "--grace-period=4")
    assert took >= 3.5, f"stopped after {took:.1f} s, before the 4 s the deletion gave it"
    assert took < 15


def test_the_spec_grace_period_applies_without_one_on_delete(cluster, namespace):
    took = gone_after(cluster, namespace, "default-grace")
    assert took < 3.5, f"took {took:.1f} s with a 1 s grace period"
