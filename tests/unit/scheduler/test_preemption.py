"""DefaultPreemption on a cache (no server): which node and which victims, the
PostFilter messages, PDBs, and nominated pods holding their place."""

from kybern.client.http import Client
from kybern.scheduler.framework import PodInfo
from kybern.scheduler.scheduler import Scheduler


def node(name, cpu="1"):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {},
            "status": {"allocatable": {"cpu": cpu, "memory": "1Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name, cpu="500m", priority=0, node_name=None, labels=None, start="2026-01-01T00:00:00Z", **spec):
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}],
                     "priority": priority, **({"nodeName": node_name} if node_name else {}), **spec},
            "status": {"startTime": start}}


class Recorder:
    def __init__(self):
        self.victims = []

    def spawn(self, coro):
        name = coro.cr_code.co_name
        frame = coro.cr_frame.f_locals
        if name == "_preempt_victim":
            self.victims.append((frame["victim"]["metadata"]["name"], frame["node"]))
        coro.close()


def scheduler_with(nodes, pods, pdbs=()):
    s = Scheduler(Client("http://127.0.0.1:9"))  # never contacted: the API calls are recorded
    for n in nodes:
        s.cache.set_node(n)
    for p in pods:
        s.cache.add_pod(PodInfo(p), p["spec"]["nodeName"])
    s.pdb_informer.list = lambda: list(pdbs)  # type: ignore[method-assign]
    rec = Recorder()
    s._spawn = rec.spawn  # type: ignore[method-assign]
    return s, rec


def test_preempts_the_lowest_priority_pods_on_the_cheapest_node():
    s, rec = scheduler_with([node("a"), node("b")], [
        pod("a-low", priority=1, node_name="a"), pod("a-mid", priority=5, node_name="a"),
        pod("b-mid1", priority=5, node_name="b"), pod("b-mid2", priority=5, node_name="b")])
    high = PodInfo(pod("high", priority=100))
    host, msg = s.find_host(high, s.cache.node_list())
    assert host is None
    assert msg == "0/2 nodes are available: 2 Insufficient cpu."  # no preemption part: it succeeded
    assert rec.victims == [("a-low", "a")]  # one victim of priority 1 beats one of 5
    assert s.nominator.node_of["default/high"] == "a"
    assert s._nominations["default/high"] == "a"


def test_equal_priority_is_no_victim_and_unhelpful_nodes_are_named():
    s, rec = scheduler_with([node("a"), node("b", cpu="100m")], [
        pod("a1", cpu="1", priority=0, node_name="a")])
    _, msg = s.find_host(PodInfo(pod("p", cpu="1", priority=0, nodeSelector={"x": "y"})), s.cache.node_list())
    assert msg.endswith("preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
    _, msg = s.find_host(PodInfo(pod("p", cpu="1", priority=0)), s.cache.node_list())
    assert msg == ("0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: "
                   "2 No preemption victims found for incoming pod.")
    s.cache.add_pod(PodInfo(pod("b-low", cpu="50m", priority=-5, node_name="b")), "b")
    _, msg = s.find_host(PodInfo(pod("p", cpu="1", priority=10)), s.cache.node_list())
    assert rec.victims == [("a1", "a")]
    assert msg == "0/2 nodes are available: 2 Insufficient cpu."
    s2, _ = scheduler_with([node("b", cpu="100m")], [pod("b-low", cpu="50m", priority=-5, node_name="b")])
    _, msg = s2.find_host(PodInfo(pod("p", cpu="1", priority=10)), s2.cache.node_list())
    assert msg == ("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
                   "1 Insufficient cpu.")  # does not fit even with its victims gone


def test_pdb_protected_pods_are_spared_when_another_node_will_do():
    guarded = {"app": "guarded"}
    pdb = {"metadata": {"name": "g", "namespace": "default"},
           "spec": {"selector": {"matchLabels": guarded}}, "status": {"disruptionsAllowed": 0}}
    s, rec = scheduler_with([node("a"), node("b")], [
        pod("a1", cpu="1", priority=1, node_name="a", labels=guarded),
        pod("b1", cpu="1", priority=3, node_name="b")], pdbs=[pdb])
    s.find_host(PodInfo(pod("p", cpu="1", priority=10)), s.cache.node_list())
    assert rec.victims == [("b1", "b")]  # a PDB violation weighs more than a higher priority


def test_nominated_pod_is_not_eligible_while_its_victims_terminate_and_holds_its_place():
    s, rec = scheduler_with([node("a")], [pod("low", cpu="1", priority=1, node_name="a")])
    high = PodInfo(pod("high", cpu="1", priority=10))
    s.find_host(high, s.cache.node_list())
    assert rec.victims == [("low", "a")]
    # the victim is terminating with the scheduler's DisruptionTarget condition
    dying = pod("low", cpu="1", priority=1, node_name="a")
    dying["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z"
    dying["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True",
                                      "reason": "PreemptionByScheduler"}]
    s.cache.add_pod(PodInfo(dying), "a")
    _, msg = s.find_host(high, s.cache.node_list())
    assert msg == ("0/1 nodes are available: 1 Insufficient cpu. "
                   "preemption: not eligible due to a terminating pod on the nominated node.")
    s.cache.remove_pod("default/low")  # gone: the nominated node is tried first and fits
    lower = PodInfo(pod("lower", cpu="1", priority=5))
    host, msg = s.find_host(lower, s.cache.node_list())
    assert host is None and msg.startswith("0/1 nodes are available: 1 Insufficient cpu.")  # high's place
    assert s.find_host(high, s.cache.node_list()) == ("a", "")
