"""Node lifecycle rules as pure functions: which taints a node's conditions
call for, and when NoExecute taints evict a pod given its tolerations."""

from __future__ import annotations

import time

from kybern.controllers.nodelifecycle import desired_taints, eviction_time

NOW = "2025-01-01T00:00:00Z"


def node(ready: str, *, taints: list | None = None, unschedulable: bool = False, **conds: str) -> dict:
    cs = [{"type": "Ready", "status": ready}] + [{"type": k, "status": v} for k, v in conds.items()]
    return {"metadata": {"name": "n"}, "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"conditions": cs}}


def test_taints_follow_conditions_and_keep_foreign_ones() -> None:
    mine = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    assert desired_taints(node("True", taints=[mine]), NOW) == [mine]
    got = desired_taints(node("Unknown", taints=[mine]), NOW)
    assert got == [mine, {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                   {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": NOW}]
    assert {t["key"] for t in desired_taints(node("False"), NOW)} == {"node.kubernetes.io/not-ready"}
    assert desired_taints(node("True", unschedulable=True, MemoryPressure="True"), NOW) == [
        {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    # a node that recovers loses the managed taints, and existing ones keep their timeAdded
    old = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2020-01-01T00:00:00Z"}
    assert old in desired_taints(node("Unknown", taints=[old]), NOW)
    assert desired_taints(node("True", taints=[old]), NOW) == []
    # a node that never posted a Ready condition (created by hand) gets no condition taint
    bare = {"metadata": {"name": "n"}, "spec": {"taints": [mine]}, "status": {}}
    assert desired_taints(bare, NOW) == [mine]


def test_eviction_time_from_tolerations() -> None:
    added = time.time() - 100
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(added))
    taint = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": stamp}]
    default = {"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                         "effect": "NoExecute", "tolerationSeconds": 300}]}}
    at = eviction_time(default, taint)
    assert at is not None and abs(at - (int(added) + 300)) < 2
    assert eviction_time({"spec": {}}, taint) == 0.0  # not tolerated: at once
    forever = {"spec": {"tolerations": [{"operator": "Exists"}]}}
    assert eviction_time(forever, taint) is None
    assert eviction_time(default, [{"key": "x", "effect": "NoSchedule"}]) is None


def test_taint_without_time_added_counts_from_when_it_was_first_seen() -> None:
    # `kubectl taint node n k=v:NoExecute` sets no timeAdded: tolerationSeconds run from
    # when the controller first saw the taint (upstream's taint manager), not from "now"
    taint = [{"key": "k", "value": "v", "effect": "NoExecute"}]
    pod = {"spec": {"tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute",
                                     "tolerationSeconds": 5}]}}
    seen = time.time() - 10
    assert eviction_time(pod, taint, {("k", "v", "NoExecute"): seen}) == seen + 5
