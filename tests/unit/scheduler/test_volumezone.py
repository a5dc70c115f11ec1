"""VolumeZone with real informer caches filled by hand (no server)."""

from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES
from kybern.scheduler.framework import (
    STATUS_SKIP,
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    CycleState,
    NodeInfo,
    PodInfo,
)
from kybern.scheduler.plugins.volumezone import ERR_NODE_AFFINITY, ERR_REASON, VolumeZone
from kybern.scheduler.scheduler import Scheduler

ZONE = "topology.kubernetes.io/zone"


def node(name, **labels):
    ni = NodeInfo(name)
    ni.set_node({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
                 "spec": {}, "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"},
                                        "conditions": [{"type": "Ready", "status": "True"}]}})
    return ni


def pod(*claims):
    return PodInfo({"metadata": {"name": "p", "namespace": "default", "uid": "p"},
                    "spec": {"containers": [{"name": "c"}],
                             "volumes": [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
                                         for i, c in enumerate(claims)]}})


def informers(pvcs=(), pvs=()):
    client = Client("http://127.0.0.1:9")  # never contacted: caches filled by hand
    inf = {"persistentvolumeclaims": Informer(client, PERSISTENTVOLUMECLAIMS),
           "persistentvolumes": Informer(client, PERSISTENTVOLUMES)}
    for name, volume in pvcs:
        inf["persistentvolumeclaims"].cache[f"default/{name}"] = {
            "metadata": {"name": name, "namespace": "default"}, "spec": {"volumeName": volume}}
    for pv in pvs:
        inf["persistentvolumes"].cache[pv["metadata"]["name"]] = pv
    return inf


def pv(name, labels=None, node_affinity=None):
    spec = {"nodeAffinity": {"required": {"nodeSelectorTerms": node_affinity}}} if node_affinity else {}
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def plugin(**kw):
    vz = VolumeZone()
    vz.set_informers(informers(**kw))
    return vz


def run(vz, p, nodes):
    state = CycleState(all_nodes=nodes)
    st = vz.pre_filter(state, p)
    if st is not None:
        return st
    return {n.name: (vz.filter(state, p, n) or None) and vz.filter(state, p, n).reasons[0] for n in nodes}


def test_skip_without_claims_or_zonal_volumes():
    assert VolumeZone().pre_filter(CycleState(), pod()) is STATUS_SKIP
    vz = plugin(pvcs=[("data", "pv1")], pvs=[pv("pv1")])
    assert vz.pre_filter(CycleState(), pod("data")) is STATUS_SKIP
    vz = plugin(pvcs=[("data", "")])  # unbound claims do not pin the pod
    assert vz.pre_filter(CycleState(), pod("data")) is STATUS_SKIP


def test_zone_label_pins_pod():
    vz = plugin(pvcs=[("data", "pv1")], pvs=[pv("pv1", {ZONE: "z1"})])
    r = run(vz, pod("data"), [node("a", **{ZONE: "z1"}), node("b", **{ZONE: "z2"}), node("c")])
    assert r == {"a": None, "b": ERR_REASON, "c": None}  # a node without zone labels fits, as upstream


def test_multi_zone_value_and_beta_label_against_ga_node_label():
    vz = plugin(pvcs=[("data", "pv1")],
                pvs=[pv("pv1", {"failure-domain.beta.kubernetes.io/zone": "z1__z3"})])
    r = run(vz, pod("data"), [node("a", **{ZONE: "z1"}), node("b", **{ZONE: "z2"}), node("c", **{ZONE: "z3"})])
    assert r == {"a": None, "b": ERR_REASON, "c": None}


def test_pv_node_affinity():
    terms = [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["b"]}]}]
    vz = plugin(pvcs=[("data", "pv1")], pvs=[pv("pv1", node_affinity=terms)])
    assert run(vz, pod("data"), [node("a"), node("b")]) == {"a": ERR_NODE_AFFINITY, "b": None}


def test_missing_claim_or_volume():
    st = plugin().pre_filter(CycleState(), pod("data"))
    assert st.code == UNSCHEDULABLE_AND_UNRESOLVABLE and st.reasons == ['persistentvolumeclaim "data" not found']
    st = plugin(pvcs=[("data", "pv9")]).pre_filter(CycleState(), pod("data"))
    assert st.reasons == ['persistentvolume "pv9" not found']


def test_cycle_message_matches_upstream():
    s = Scheduler(Client("http://127.0.0.1:9"))
    inf = informers(pvcs=[("data", "pv1")], pvs=[pv("pv1", {ZONE: "z1"})])
    for k, i in inf.items():
        s.informers[k].cache.update(i.cache)
    for name, zone in (("a", "z2"), ("b", "z2"), ("c", "z1")):
        s.cache.set_node(node(name, **{ZONE: zone}).node)
    assert s.find_host(pod("data"), s.cache.node_list()) == ("c", "")
    s.cache.remove_node("c")
    _, msg = s.find_host(pod("data"), s.cache.node_list())
    assert msg == ("0/2 nodes are available: 2 node(s) had no available volume zone. preemption: "
                   "0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
