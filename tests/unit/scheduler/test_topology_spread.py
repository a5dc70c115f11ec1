"""PodTopologySpread's node inclusion policies, minDomains and matchLabelKeys,
and scoring that counts the pods of infeasible nodes in a feasible node's domain
(upstream pkg/scheduler/framework/plugins/podtopologyspread)."""

from kybern.scheduler.framework import CycleState, NodeInfo, PodInfo
from kybern.scheduler.plugins.podtopologyspread import ERR_REASON, ZONE, PodTopologySpread


def node(name, zone, taints=None):
    ni = NodeInfo(name)
    ni.set_node({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, ZONE: zone}},
                 "spec": {"taints": taints or []},
                 "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                            "conditions": [{"type": "Ready", "status": "True"}]}})
    return ni


def pod(name, labels=None, owner=None, **spec):
    m = {"name": name, "namespace": "default", "labels": labels or {}}
    if owner:
        m["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "ReplicaSet", "name": "rs"}]
    return PodInfo({"metadata": m, "spec": {"containers": [{"name": "c"}], **spec}})


def hard(**extra):
    return [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app": "w"}}, **extra}]


def filter_all(p, nodes):
    ts = PodTopologySpread()
    s = CycleState(all_nodes=nodes)
    assert ts.pre_filter(s, p) is None
    return {n.name: (ts.filter(s, p, n) is None) for n in nodes}


def test_node_affinity_policy_honor_ignores_zones_the_pod_cannot_go_to():
    a, b, c = node("a", "a"), node("b", "b"), node("c", "c")
    a.add_pod(pod("x", {"app": "w"}))
    b.add_pod(pod("y", {"app": "w"}))
    only_ab = {"nodeSelectorTerms": [{"matchExpressions": [{"key": ZONE, "operator": "In",
                                                            "values": ["a", "b"]}]}]}
    p = pod("new", {"app": "w"}, topologySpreadConstraints=hard(),
            affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": only_ab}})
    assert filter_all(p, [a, b, c]) == {"a": True, "b": True, "c": True}  # c fails NodeAffinity, not spread
    p = pod("new", {"app": "w"}, topologySpreadConstraints=hard(nodeAffinityPolicy="Ignore"),
            affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": only_ab}})
    assert filter_all(p, [a, b, c]) == {"a": False, "b": False, "c": True}  # empty zone c is the minimum


def test_node_taints_policy_honor_ignores_tainted_nodes():
    a, b, c = node("a", "a"), node("b", "b"), node("c", "c", taints=[{"key": "k", "effect": "NoSchedule"}])
    a.add_pod(pod("x", {"app": "w"}))
    b.add_pod(pod("y", {"app": "w"}))
    assert filter_all(pod("n", {"app": "w"}, topologySpreadConstraints=hard()), [a, b, c])["a"] is False
    p = pod("n", {"app": "w"}, topologySpreadConstraints=hard(nodeTaintsPolicy="Honor"))
    assert filter_all(p, [a, b, c])["a"] is True


def test_min_domains_takes_the_minimum_as_zero_while_domains_are_missing():
    a, b = node("a", "a"), node("b", "b")
    a.add_pod(pod("x", {"app": "w"}))
    b.add_pod(pod("y", {"app": "w"}))
    assert filter_all(pod("n", {"app": "w"}, topologySpreadConstraints=hard()), [a, b]) == {"a": True, "b": True}
    p = pod("n", {"app": "w"}, topologySpreadConstraints=hard(minDomains=3))
    ts = PodTopologySpread()
    s = CycleState(all_nodes=[a, b])
    ts.pre_filter(s, p)
    assert ts.filter(s, p, a).reasons == [ERR_REASON]  # 1 + 1 - 0 > 1


def test_match_label_keys_count_only_the_same_revision():
    a, b = node("a", "a"), node("b", "b")
    for i in range(2):
        a.add_pod(pod(f"old{i}", {"app": "w", "pod-template-hash": "old"}))
    new = {"app": "w", "pod-template-hash": "new"}
    assert filter_all(pod("n", new, topologySpreadConstraints=hard()), [a, b])["a"] is False
    p = pod("n", new, topologySpreadConstraints=hard(matchLabelKeys=["pod-template-hash"]))
    assert filter_all(p, [a, b]) == {"a": True, "b": True}


def test_default_spread_counts_pods_on_infeasible_nodes_of_a_feasible_zone():
    a1, a2, b = node("a1", "a"), node("a2", "a"), node("b", "b")
    for i in range(3):
        a1.add_pod(pod(f"s{i}", owner="rs1"))  # a1 is full (infeasible), its zone is not empty
    p = pod("new", owner="rs1")
    ts = PodTopologySpread()
    s = CycleState(all_nodes=[a1, a2, b])
    assert ts.pre_score(s, p, [a2, b]) is None
    s["scored_nodes"] = [a2, b]
    scores = ts.score_nodes(s, p, [a2, b])
    ts.normalize(s, p, scores)
    assert scores[1] > scores[0], scores


def test_default_spreading_is_for_replica_set_and_stateful_set_pods_not_jobs():
    a, b = node("a", "a"), node("b", "b")
    ts = PodTopologySpread()
    job_pod = PodInfo({"metadata": {"name": "j", "namespace": "default", "ownerReferences": [
        {"uid": "job1", "controller": True, "kind": "Job", "name": "j"}]}, "spec": {"containers": [{"name": "c"}]}})
    assert ts.pre_score(CycleState(all_nodes=[a, b]), job_pod, [a, b]).code == 5  # skipped, as upstream
    assert ts.pre_score(CycleState(all_nodes=[a, b]), pod("r", owner="rs1"), [a, b]) is None
