"""Filters and scores, each on hand-built NodeInfos."""

from kybern.scheduler.framework import (
    UNSCHEDULABLE,
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    CycleState,
    NodeInfo,
    PodInfo,
)
from kybern.scheduler.plugins.nodeaffinity import NodeAffinity
from kybern.scheduler.plugins.nodename import NodeName
from kybern.scheduler.plugins.noderesources import NodeResourcesFit
from kybern.scheduler.plugins.nodeunschedulable import NodeUnschedulable
from kybern.scheduler.plugins.podtopologyspread import PodTopologySpread
from kybern.scheduler.plugins.tainttoleration import TaintToleration, tolerates


def node(name="n1", cpu="2", mem="4Gi", pods=110, labels=None, taints=None, unschedulable=False,
         ready=True):
    ni = NodeInfo(name)
    ni.set_node({"metadata": {"name": name, "labels": labels or {"kubernetes.io/hostname": name}},
                 "spec": {"taints": taints or [], "unschedulable": unschedulable},
                 "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": str(pods)},
                            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})
    return ni


def pod(name="p", cpu=None, mem=None, ns="default", owner=None, labels=None, **spec):
    req = {}
    if cpu:
        req["cpu"] = cpu
    if mem:
        req["memory"] = mem
    m = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        m["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "ReplicaSet", "name": "rs"}]
    return PodInfo({"metadata": m, "spec": {"containers": [{"name": "c", "resources": {"requests": req}}],
                                           **spec}})


def test_resource_fit_reasons():
    fit = NodeResourcesFit()
    n = node(cpu="1", mem="1Gi", pods=1)
    assert fit.filter(CycleState(), pod(cpu="500m"), n) is None
    st = fit.filter(CycleState(), pod(cpu="2", mem="2Gi"), n)
    assert st.code == UNSCHEDULABLE and st.reasons == ["Insufficient cpu", "Insufficient memory"]
    n.add_pod(pod("other", cpu="600m"))
    assert fit.filter(CycleState(), pod(cpu="500m"), n).reasons == ["Too many pods", "Insufficient cpu"]
    n.remove_pod("default/other")
    assert n.requested["cpu"] == 0 and not n.pods


def test_least_allocated_prefers_emptier_nodes():
    fit = NodeResourcesFit()
    empty, busy = node("a"), node("b")
    busy.add_pod(pod("x", cpu="1500m", mem="3Gi"))
    p = pod(cpu="100m", mem="100Mi")
    assert fit.score(CycleState(), p, empty) > fit.score(CycleState(), p, busy)


def test_node_name():
    nn = NodeName()
    p = pod(nodeName="n2")
    assert nn.filter(CycleState(), p, node("n2")) is None
    st = nn.filter(CycleState(), p, node("n1"))
    assert st.code == UNSCHEDULABLE_AND_UNRESOLVABLE
    assert st.reasons == ["node(s) didn't match the requested node name"]


def test_unschedulable_node_and_toleration():
    nu = NodeUnschedulable()
    n = node(unschedulable=True)
    assert nu.filter(CycleState(), pod(), n).reasons == ["node(s) were unschedulable"]
    tol = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    assert nu.filter(CycleState(), pod(tolerations=tol), n) is None


def test_taints():
    tt = TaintToleration()
    n = node(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    st = tt.filter(CycleState(), pod(), n)
    assert st.reasons == ["node(s) had untolerated taint {dedicated: gpu}"]
    ok = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    assert tt.filter(CycleState(), pod(tolerations=ok), n) is None
    assert tolerates({"operator": "Exists"}, {"key": "any", "effect": "NoExecute"})
    assert not tolerates({"key": "a", "value": "x"}, {"key": "a", "value": "y", "effect": "NoSchedule"})
    # PreferNoSchedule never filters, only scores lower
    soft = node("s", taints=[{"key": "k", "effect": "PreferNoSchedule"}])
    assert tt.filter(CycleState(), pod(), soft) is None
    scores = [tt.score(CycleState(), pod(), soft), tt.score(CycleState(), pod(), node("clean"))]
    tt.normalize(CycleState(), pod(), scores)
    assert scores == [0, 100]


def test_not_ready_node_is_tainted():
    n = node(ready=False)
    st = TaintToleration().filter(CycleState(), pod(), n)
    assert st.reasons == ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]


def test_node_selector_and_affinity():
    na = NodeAffinity()
    n = node(labels={"disk": "ssd", "gen": "5"})
    p = pod(nodeSelector={"disk": "ssd"})
    s = CycleState()
    assert na.pre_filter(s, p) is None and na.filter(s, p, n) is None
    p = pod(nodeSelector={"disk": "hdd"})
    s = CycleState()
    na.pre_filter(s, p)
    assert na.filter(s, p, n).reasons == ["node(s) didn't match Pod's node affinity/selector"]
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]},
        {"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]},
                              {"key": "legacy", "operator": "DoesNotExist"}]}]}}}
    p = pod(affinity=aff)
    s = CycleState()
    na.pre_filter(s, p)
    assert na.filter(s, p, n) is None  # second term matches
    assert na.pre_filter(CycleState(), pod()).code == 5  # nothing to check: skipped


def test_preferred_affinity_scores():
    na = NodeAffinity()
    aff = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 80, "preference": {"matchExpressions": [{"key": "zone", "operator": "In",
                                                            "values": ["a"]}]}}]}}
    p = pod(affinity=aff)
    s = CycleState()
    assert na.pre_score(s, p, []) is None
    scores = [na.score(s, p, node("a", labels={"zone": "a"})), na.score(s, p, node("b", labels={"zone": "b"}))]
    na.normalize(s, p, scores)
    assert scores == [100, 0]


def test_default_spread_prefers_nodes_without_siblings():
    ts = PodTopologySpread()
    a, b = node("a"), node("b")
    for i in range(3):
        a.add_pod(pod(f"s{i}", owner="rs1"))
    p = pod("new", owner="rs1")
    s = CycleState()
    assert ts.pre_score(s, p, [a, b]) is None
    s["scored_nodes"] = [a, b]
    scores = [ts.score(s, p, a), ts.score(s, p, b)]
    ts.normalize(s, p, scores)
    assert scores[1] > scores[0]
    assert ts.pre_score(CycleState(), pod("lonely"), [a, b]).code == 5  # no owner: no defaults


def test_hard_spread_constraint():
    ts = PodTopologySpread()
    za = node("a", labels={"zone": "a"})
    zb = node("b", labels={"zone": "b"})
    for i in range(2):
        za.add_pod(pod(f"x{i}", labels={"app": "w"}))
    c = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
          "labelSelector": {"matchLabels": {"app": "w"}}}]
    p = pod("new", labels={"app": "w"}, topologySpreadConstraints=c)
    s = CycleState(all_nodes=[za, zb])
    assert ts.pre_filter(s, p) is None
    assert ts.filter(s, p, za).reasons == ["node(s) didn't match pod topology spread constraints"]
    assert ts.filter(s, p, zb) is None
    assert ts.filter(s, p, node("c", labels={})).code == UNSCHEDULABLE_AND_UNRESOLVABLE
