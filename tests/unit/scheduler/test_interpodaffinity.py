"""InterPodAffinity on hand-built NodeInfos and whole cycles on a scheduler cache."""

from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.resources import NAMESPACES
from kybern.scheduler.framework import (
    STATUS_SKIP,
    UNSCHEDULABLE,
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    CycleState,
    NodeInfo,
    PodInfo,
)
from kybern.scheduler.plugins.interpodaffinity import (
    ERR_AFFINITY,
    ERR_ANTI_AFFINITY,
    ERR_EXISTING_ANTI_AFFINITY,
    InterPodAffinity,
)
from kybern.scheduler.scheduler import Scheduler

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def node(name, zone=None):
    labels = {HOST: name}
    if zone:
        labels[ZONE] = zone
    ni = NodeInfo(name)
    ni.set_node({"metadata": {"name": name, "labels": labels}, "spec": {},
                 "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"},
                            "conditions": [{"type": "Ready", "status": "True"}]}})
    return ni


def term(key, labels, **extra):
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **extra}


def pod(name, labels=None, ns="default", affinity=None, anti=None, pref=None, pref_anti=None):
    aff = {}
    if affinity or pref:
        aff["podAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": affinity or [],
                              "preferredDuringSchedulingIgnoredDuringExecution": pref or []}
    if anti or pref_anti:
        aff["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": anti or [],
                                  "preferredDuringSchedulingIgnoredDuringExecution": pref_anti or []}
    spec = {"containers": [{"name": "c"}]}
    if aff:
        spec["affinity"] = aff
    return PodInfo({"metadata": {"name": name, "namespace": ns, "labels": labels or {}, "uid": name},
                    "spec": spec})


def run_filter(plugin, p, nodes):
    state = CycleState(all_nodes=nodes)
    st = plugin.pre_filter(state, p)
    if st is STATUS_SKIP:
        return {n.name: None for n in nodes}
    return {n.name: plugin.filter(state, p, n) for n in nodes}


def reasons(result):
    return {k: (v.code, v.reasons[0]) if v else None for k, v in result.items()}


def test_skips_without_terms():
    assert InterPodAffinity().pre_filter(CycleState(all_nodes=[node("a")]), pod("p")) is STATUS_SKIP


def test_required_affinity_follows_matching_pod_zone():
    a, b, c = node("a", "z1"), node("b", "z1"), node("c", "z2")
    a.add_pod(pod("db", {"app": "db"}))
    r = run_filter(InterPodAffinity(), pod("web", affinity=[term(ZONE, {"app": "db"})]), [a, b, c])
    assert r["a"] is None and r["b"] is None
    assert reasons(r)["c"] == (UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_AFFINITY)


def test_required_affinity_other_namespace_does_not_count():
    a = node("a", "z1")
    a.add_pod(pod("db", {"app": "db"}, ns="other"))
    r = run_filter(InterPodAffinity(), pod("web", affinity=[term(ZONE, {"app": "db"})]), [a])
    assert reasons(r)["a"] == (UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_AFFINITY)
    r = run_filter(InterPodAffinity(), pod("web", affinity=[term(ZONE, {"app": "db"}, namespaces=["other"])]), [a])
    assert r["a"] is None
    r = run_filter(InterPodAffinity(), pod("web", affinity=[term(ZONE, {"app": "db"}, namespaceSelector={})]), [a])
    assert r["a"] is None


def test_namespace_selector_reads_namespace_informer():
    inf = Informer(Client("http://127.0.0.1:9"), NAMESPACES)  # filled by hand, never started
    inf.cache["other"] = {"metadata": {"name": "other", "labels": {"team": "x"}}}
    inf.cache["default"] = {"metadata": {"name": "default", "labels": {}}}
    plugin = InterPodAffinity()
    plugin.set_informers({"namespaces": inf})
    a = node("a", "z1")
    a.add_pod(pod("db", {"app": "db"}, ns="other"))
    p = pod("web", affinity=[term(ZONE, {"app": "db"}, namespaceSelector={"matchLabels": {"team": "x"}})])
    assert run_filter(plugin, p, [a])["a"] is None


def test_first_pod_of_self_affine_group_goes_anywhere_with_the_key():
    a, nozone = node("a", "z1"), node("b")
    p = pod("web-0", {"app": "web"}, affinity=[term(ZONE, {"app": "web"})])
    r = run_filter(InterPodAffinity(), p, [a, nozone])
    assert r["a"] is None
    assert reasons(r)["b"] == (UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_AFFINITY)
    # not self-matching: no pod matches, nothing fits
    r = run_filter(InterPodAffinity(), pod("x", affinity=[term(ZONE, {"app": "web"})]), [a])
    assert reasons(r)["a"] == (UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_AFFINITY)


def test_required_anti_affinity_per_host():
    a, b = node("a", "z1"), node("b", "z1")
    a.add_pod(pod("web-0", {"app": "web"}))
    r = run_filter(InterPodAffinity(), pod("web-1", {"app": "web"}, anti=[term(HOST, {"app": "web"})]), [a, b])
    assert reasons(r) == {"a": (UNSCHEDULABLE, ERR_ANTI_AFFINITY), "b": None}


def test_existing_pods_anti_affinity_is_symmetric():
    a, b, c = node("a", "z1"), node("b", "z1"), node("c", "z2")
    a.add_pod(pod("lonely", {"app": "lonely"}, anti=[term(ZONE, {"app": "web"})]))
    r = run_filter(InterPodAffinity(), pod("web", {"app": "web"}), [a, b, c])
    assert reasons(r) == {"a": (UNSCHEDULABLE, ERR_EXISTING_ANTI_AFFINITY),
                          "b": (UNSCHEDULABLE, ERR_EXISTING_ANTI_AFFINITY), "c": None}


def test_preferred_terms_score_and_normalize():
    a, b, c = node("a", "z1"), node("b", "z2"), node("c", "z3")
    a.add_pod(pod("cache", {"app": "cache"}))
    b.add_pod(pod("noisy", {"app": "noisy"}))
    p = pod("web", pref=[{"weight": 10, "podAffinityTerm": term(ZONE, {"app": "cache"})}],
            pref_anti=[{"weight": 5, "podAffinityTerm": term(ZONE, {"app": "noisy"})}])
    plugin, nodes = InterPodAffinity(), [a, b, c]
    state = CycleState(all_nodes=nodes)
    plugin.pre_filter(state, p)
    assert plugin.pre_score(state, p, nodes) is None
    scores = [plugin.score(state, p, n) for n in nodes]
    assert scores == [10, -5, 0]
    plugin.normalize(state, p, scores)
    assert scores == [100, 0, 33]


def test_existing_pods_required_affinity_attracts_matching_pod():
    a, b = node("a", "z1"), node("b", "z2")
    a.add_pod(pod("fan", {"app": "fan"}, affinity=[term(ZONE, {"app": "star"})]))
    plugin, nodes, p = InterPodAffinity(), [a, b], pod("star", {"app": "star"})
    state = CycleState(all_nodes=nodes)
    assert plugin.pre_filter(state, p) is STATUS_SKIP
    assert plugin.pre_score(state, p, nodes) is None
    assert [plugin.score(state, p, n) for n in nodes] == [1, 0]


def cluster(*names_zones):
    s = Scheduler(Client("http://127.0.0.1:9"))  # never contacted: find_host is pure
    for name, zone in names_zones:
        s.cache.set_node(node(name, zone).node)
    return s


def test_cycles_spread_replicas_with_anti_affinity_then_fail_with_upstream_message():
    s = cluster(("a", "z1"), ("b", "z2"))
    placed = []
    for i in range(3):
        p = pod(f"web-{i}", {"app": "web"}, anti=[term(HOST, {"app": "web"})])
        host, msg = s.find_host(p, s.cache.node_list())
        if host:
            s.cache.assume(p, host)
        placed.append(host or msg)
    assert sorted(placed[:2]) == ["a", "b"]
    assert placed[2] == ("0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. "
                         "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.")


def test_cycles_colocate_with_affinity():
    s = cluster(("a", "z1"), ("b", "z2"), ("c", "z2"))
    db = pod("db", {"app": "db"})
    s.cache.assume(db, "c")
    for i in range(5):
        p = pod(f"web-{i}", {"app": "web"}, affinity=[term(ZONE, {"app": "db"})])
        host, _ = s.find_host(p, s.cache.node_list())
        assert host in ("b", "c")
        s.cache.assume(p, host)


def test_cache_keeps_the_nodes_with_affinity_pods_as_pods_come_and_go():
    s = cluster(("a", "z1"), ("b", "z2"))
    plain = pod("plain", {"app": "x"})
    anti = pod("anti", {"app": "web"}, anti=[term(HOST, {"app": "web"})])
    s.cache.assume(plain, "a")
    assert s.cache.nodes_with_affinity() == []
    s.cache.assume(anti, "a")
    assert [n.name for n in s.cache.nodes_with_affinity()] == ["a"]
    s.cache.confirm(anti, "b")  # the informer shows it bound elsewhere: it moves
    assert [n.name for n in s.cache.nodes_with_affinity()] == ["b"]
    # the existing pod's anti-affinity now keeps a matching pod off b
    host, _ = s.find_host(pod("web-2", {"app": "web"}), s.cache.node_list())
    assert host == "a"
    s.cache.remove_node("b")  # node object gone: its pods are not candidates' neighbours
    assert s.cache.nodes_with_affinity() == []
    s.cache.remove_pod(anti.key)
    s.cache.set_node(node("b", "z2").node)
    assert s.cache.nodes_with_affinity() == []


def test_match_label_keys_limit_anti_affinity_to_the_same_revision():
    # a rolling update's new pods are not repelled by the old revision's pods
    a, b = node("a", "z1"), node("b", "z1")
    old = {"app": "web", "pod-template-hash": "old"}
    new = {"app": "web", "pod-template-hash": "new"}
    a.add_pod(pod("old-0", old, anti=[term(HOST, {"app": "web"}, matchLabelKeys=["pod-template-hash"])]))
    r = run_filter(InterPodAffinity(), pod("new-0", new, anti=[term(HOST, {"app": "web"},
                                                                     matchLabelKeys=["pod-template-hash"])]), [a, b])
    assert reasons(r) == {"a": None, "b": None}
    r = run_filter(InterPodAffinity(), pod("new-0", new, anti=[term(HOST, {"app": "web"})]), [a, b])
    assert reasons(r)["a"] == (UNSCHEDULABLE, ERR_ANTI_AFFINITY)


def test_mismatch_label_keys_keep_apart_pods_of_other_tenants():
    a, b = node("a", "z1"), node("b", "z1")
    a.add_pod(pod("t1", {"tenant": "one"}))
    anti = [{"labelSelector": {"matchExpressions": [{"key": "tenant", "operator": "Exists"}]},
             "topologyKey": HOST, "mismatchLabelKeys": ["tenant"]}]
    assert reasons(run_filter(InterPodAffinity(), pod("t1b", {"tenant": "one"}, anti=anti), [a, b]))["a"] is None
    r = run_filter(InterPodAffinity(), pod("t2", {"tenant": "two"}, anti=anti), [a, b])
    assert reasons(r)["a"] == (UNSCHEDULABLE, ERR_ANTI_AFFINITY)
