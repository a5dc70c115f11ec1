"""ReplicaSet logic that needs no server: which pods go first, status, batching."""

import asyncio
import datetime as dt

from kybern.controllers.deletion_order import rank_for_deletion
from kybern.controllers.expectations import Expectations
from kybern.controllers.replicaset import calculate_status, slow_start_batch

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def pod(name, node="n1", phase="Running", ready=True, restarts=0, created="2024-05-01T00:00:00Z",
        ready_at="2024-05-01T00:00:10Z", labels=None, cost=None):
    p = {"metadata": {"name": name, "uid": name, "creationTimestamp": created,
                      "labels": labels or {"app": "web"}},
         "spec": {"nodeName": node} if node else {},
         "status": {"phase": phase,
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                    "lastTransitionTime": ready_at}],
                    "containerStatuses": [{"restartCount": restarts}]}}
    if cost is not None:
        p["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    return p


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_unscheduled_pending_notready_go_first():
    pods = [pod("running"), pod("notready", ready=False), pod("pending", phase="Pending", ready=False),
            pod("unscheduled", node="", phase="Pending", ready=False)]
    assert names(rank_for_deletion(pods, pods, NOW)) == ["unscheduled", "pending", "notready", "running"]


def test_deletion_cost_then_colocation():
    a, b = pod("a", node="n1"), pod("b", node="n2")
    c = pod("c", node="n2")
    assert names(rank_for_deletion([a, b, c], [a, b, c], NOW))[0] in ("b", "c")  # n2 is doubled up
    a2 = pod("a", node="n1", cost=-5)
    assert names(rank_for_deletion([a2, b, c], [a2, b, c], NOW))[0] == "a"


def test_restarts_then_newer_first():
    old = pod("old", created="2024-01-01T00:00:00Z", ready_at="2024-01-01T00:00:00Z")
    new = pod("new", created="2024-05-31T00:00:00Z", ready_at="2024-01-01T00:00:00Z")
    assert names(rank_for_deletion([old, new], [], NOW)) == ["new", "old"]
    crashy = pod("crashy", restarts=5)
    calm = pod("calm", restarts=0)
    assert names(rank_for_deletion([calm, crashy], [], NOW)) == ["crashy", "calm"]


def test_recently_ready_goes_first():
    a = pod("a", ready_at="2024-05-31T23:59:00Z")
    b = pod("b", ready_at="2024-01-01T00:00:00Z")
    assert names(rank_for_deletion([b, a], [], NOW)) == ["a", "b"]


def test_status_counts():
    rs = {"metadata": {"name": "rs", "generation": 3},
          "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "web", "v": "1"}}}},
          "status": {}}
    pods = [pod("a", labels={"app": "web", "v": "1"}), pod("b", ready=False, labels={"app": "web"})]
    st = calculate_status(rs, pods, None)
    assert st == {"replicas": 2, "fullyLabeledReplicas": 1, "readyReplicas": 1,
                  "availableReplicas": 1, "observedGeneration": 3}
    rs["spec"]["minReadySeconds"] = 10 ** 9
    assert "availableReplicas" not in calculate_status(rs, pods, None)


def test_replica_failure_condition():
    rs = {"metadata": {"name": "rs", "generation": 1}, "spec": {"replicas": 3}, "status": {}}
    st = calculate_status(rs, [], RuntimeError("quota exceeded"))
    cond = st["conditions"][0]
    assert cond["type"] == "ReplicaFailure" and cond["reason"] == "FailedCreate"
    assert cond["message"] == "quota exceeded"
    rs["status"] = st
    assert "conditions" not in calculate_status(rs, [], None)


async def test_slow_start_batch_stops_after_failing_batch():
    calls = 0

    async def ok():
        nonlocal calls
        calls += 1

    assert await slow_start_batch(10, ok) == (10, None)
    assert calls == 10
    calls = 0

    async def fail_after_3():
        nonlocal calls
        calls += 1
        if calls > 3:
            raise RuntimeError("no")

    done, err = await slow_start_batch(10, fail_after_3)
    assert done == 3 and isinstance(err, RuntimeError)
    assert calls == 7  # batches 1, 2, 4; the 8-batch never starts
    await asyncio.sleep(0)


def test_expectations():
    e = Expectations()
    assert e.satisfied("k")
    e.expect_creations("k", 2)
    assert not e.satisfied("k")
    e.creation_observed("k")
    e.creation_observed("k")
    assert e.satisfied("k")
    e.expect_deletions("k", ["ns/a", "ns/b"])
    e.deletion_observed("k", "ns/a")
    e.deletion_observed("k", "ns/a")
    assert not e.satisfied("k")
    e.deletion_observed("k", "ns/b")
    assert e.satisfied("k")
