"""NodePorts: hostPort conflicts as upstream's HostPortInfo.CheckConflict."""

from kybern.scheduler.framework import UNSCHEDULABLE, CycleState, NodeInfo, PodInfo
from kybern.scheduler.plugins.nodeports import ERR_REASON, NodePorts


def node():
    ni = NodeInfo("n")
    ni.set_node({"metadata": {"name": "n", "labels": {}}, "spec": {},
                 "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "110"},
                            "conditions": [{"type": "Ready", "status": "True"}]}})
    return ni


def pod(name, *ports):
    return PodInfo({"metadata": {"name": name, "namespace": "default"},
                    "spec": {"containers": [{"name": "c", "ports": list(ports)}]}})


def fits(p, n):
    st = CycleState()
    if NodePorts().pre_filter(st, p) is not None:
        return True  # skipped: no host ports
    r = NodePorts().filter(st, p, n)
    assert r is None or (r.code, r.reasons) == (UNSCHEDULABLE, [ERR_REASON])
    return r is None


def test_host_port_conflicts():
    n = node()
    n.add_pod(pod("web", {"containerPort": 80, "hostPort": 8080}))
    assert not fits(pod("p", {"containerPort": 80, "hostPort": 8080}), n)
    assert fits(pod("p", {"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}), n)
    assert fits(pod("p", {"containerPort": 80, "hostPort": 8081}), n)
    assert fits(pod("p", {"containerPort": 80}), n)  # no hostPort: nothing to reserve
    assert not fits(pod("p", {"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}), n)  # 0.0.0.0 taken
    n2 = node()
    n2.add_pod(pod("web", {"containerPort": 80, "hostPort": 9090, "hostIP": "10.0.0.1"}))
    assert fits(pod("p", {"containerPort": 80, "hostPort": 9090, "hostIP": "10.0.0.2"}), n2)
    assert not fits(pod("p", {"containerPort": 80, "hostPort": 9090}), n2)
