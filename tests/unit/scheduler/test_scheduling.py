"""Whole scheduling cycles on a cache (no server): choices and failure messages."""

import asyncio

from kybern.client.http import Client
from kybern.scheduler import queue as queue_mod
from kybern.scheduler.framework import (
    UNSCHEDULABLE,
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    PodInfo,
    Status,
    fit_error_message,
)
from kybern.scheduler.queue import SchedulingQueue
from kybern.scheduler.scheduler import Scheduler, num_feasible_nodes_to_find


def node(name, cpu="1", labels=None, taints=None):
    return {"metadata": {"name": name, "labels": labels or {"kubernetes.io/hostname": name}},
            "spec": {"taints": taints or []},
            "status": {"allocatable": {"cpu": cpu, "memory": "1Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name, cpu="100m", **spec):
    return {"metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}], **spec}}


def scheduler_with(*nodes):
    s = Scheduler(Client("http://127.0.0.1:9"))  # never contacted: find_host is pure
    for n in nodes:
        s.cache.set_node(n)
    return s


def test_message_insufficient_cpu_matches_upstream():
    s = scheduler_with(node("a"), node("b"), node("c"))
    host, msg = s.find_host(PodInfo(pod("big", cpu="2")), s.cache.node_list())
    assert host is None
    assert msg == ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are "
                   "available: 3 No preemption victims found for incoming pod.")


def test_message_mixed_reasons_sorted():
    s = scheduler_with(node("a"), node("b", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
                       node("c", cpu="100m"))
    _, msg = s.find_host(PodInfo(pod("p", cpu="500m", nodeSelector={"kubernetes.io/hostname": "b"})),
                         s.cache.node_list())
    assert msg == ("0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, "
                   "2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are "
                   "available: 3 Preemption is not helpful for scheduling.")


def test_fit_error_formatting():
    st = {"a": Status(UNSCHEDULABLE, "Insufficient cpu", "Insufficient memory"),
          "b": Status(UNSCHEDULABLE_AND_UNRESOLVABLE, "node(s) were unschedulable")}
    assert fit_error_message(2, st) == ("0/2 nodes are available: 1 Insufficient cpu, "
                                        "1 Insufficient memory, 1 node(s) were unschedulable.")
    s = scheduler_with(node("a"), node("b"))
    _, msg = s.find_host(PodInfo(pod("p", cpu="2", preemptionPolicy="Never")), s.cache.node_list())
    assert msg.endswith(". preemption: not eligible due to preemptionPolicy=Never.")


def test_assumed_pods_take_capacity():
    s = scheduler_with(node("a"), node("b"))
    chosen = []
    for i in range(4):
        pi = PodInfo(pod(f"p{i}", cpu="500m"))
        host, _ = s.find_host(pi, s.cache.node_list())
        s.cache.assume(pi, host)
        chosen.append(host)
    assert sorted(chosen) == ["a", "a", "b", "b"]
    host, msg = s.find_host(PodInfo(pod("p5", cpu="500m")), s.cache.node_list())
    assert host is None and "2 Insufficient cpu" in msg
    s.cache.forget("default/p0")
    assert s.find_host(PodInfo(pod("p5", cpu="500m")), s.cache.node_list())[0] is not None


def test_spreads_replicas_of_one_owner():
    s = scheduler_with(*(node(f"n{i}", cpu="100") for i in range(3)))
    hosts = []
    for i in range(6):
        p = pod(f"r{i}", cpu="10m")
        p["metadata"]["ownerReferences"] = [{"uid": "rs1", "controller": True, "kind": "ReplicaSet",
                                             "name": "rs"}]
        pi = PodInfo(p)
        host, _ = s.find_host(pi, s.cache.node_list())
        s.cache.assume(pi, host)
        hosts.append(host)
    assert sorted(hosts.count(n) for n in ("n0", "n1", "n2")) == [2, 2, 2]


def test_num_nodes_to_score():
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(1000) == 420
    assert num_feasible_nodes_to_find(200) == 100
    assert num_feasible_nodes_to_find(10000) == 500
    assert num_feasible_nodes_to_find(1000, 100) == 100


async def test_queue_moves_unschedulable_on_cluster_event(monkeypatch):
    monkeypatch.setattr(queue_mod, "INITIAL_BACKOFF", 0.05)
    q = SchedulingQueue()
    q.add(PodInfo(pod("a")))
    qp = q.pop_nowait()
    cycle = q.cycle
    q.requeue_failed(qp, cycle)
    assert q.pop_nowait() is None
    q.move_all()  # e.g. a node was added; still backing off (1s) -> backoffQ
    assert q.pop_nowait() is None
    await asyncio.wait_for(q.pop(), 2)  # comes out once the backoff timer fires
    assert qp.attempts == 2


async def test_queue_event_during_cycle_goes_to_backoff_not_unschedulable():
    q = SchedulingQueue()
    q.add(PodInfo(pod("a")))
    qp = q.pop_nowait()
    q.move_all()  # the cluster changed while we were trying
    q.requeue_failed(qp, q.cycle)
    assert q._where[qp.key] == "backoff"


async def test_queue_priority_order():
    q = SchedulingQueue()
    q.add(PodInfo(pod("low")))
    q.add(PodInfo(pod("high", priority=1000)))
    assert q.pop_nowait().key == "default/high"
    assert q.pop_nowait().key == "default/low"


async def test_queue_moves_only_pod_waiters_when_a_pod_is_assigned():
    q = SchedulingQueue()
    q.add(PodInfo(pod("affine")))
    q.add(PodInfo(pod("big")))
    for _ in range(2):
        qp = q.pop_nowait()
        q.requeue_failed(qp, q.cycle, waits_for_pods=qp.key == "default/affine")
    q.move_pod_waiters()  # e.g. the pod it wants to be near was bound
    assert q._where["default/affine"] in ("active", "backoff")
    assert q._where["default/big"] == "unschedulable"  # more cpu does not come with a pod


def test_a_scheduler_started_late_on_synced_shared_informers_takes_their_objects():
    """A scheduler made after the shared informers have their objects (it won its Lease
    after the controllers had synced them, or it restarted after a crash) gets them
    replayed into its handlers as it registers: its state must exist by then."""
    from kybern.client.informer_factory import InformerFactory
    from kybern.client.resources import NODES, PODS

    factory = InformerFactory(Client("http://127.0.0.1:9"))  # never contacted: caches filled by hand
    node = {"metadata": {"name": "n1", "labels": {}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}
    bound = {"metadata": {"name": "a", "namespace": "default", "uid": "u1"},
             "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
             "status": {"phase": "Running"}}
    pending = {"metadata": {"name": "b", "namespace": "default", "uid": "u2"},
               "spec": {"schedulerName": "default-scheduler", "containers": [{"name": "c"}]}, "status": {}}
    factory.informer(NODES).cache["n1"] = node
    factory.informer(PODS).cache.update({"default/a": bound, "default/b": pending})
    s = Scheduler(Client("http://127.0.0.1:9"), informers=factory)
    assert s.cache.nodes["n1"].node is node and s.cache._pod_node == {"default/a": "n1"}
    assert len(s.queue) == 1 and s.queue.contains("default/b")
