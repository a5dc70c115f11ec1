"""What the Endpoints and EndpointSlice controllers compute from a Service and its pods."""

from __future__ import annotations

import asyncio

from kybern.controllers import endpointutil as eu
from kybern.controllers.endpoints import desired_subsets
from kybern.controllers.endpointslice import EndpointSliceController, desired_endpoints
from kybern.network import resolvconf


def pod(name, ip, ready=True, deleting=False, hostname=None, subdomain=None, port_name="http", port=8080,
        phase="Running", node="n1"):
    p = {"metadata": {"name": name, "namespace": "d", "uid": f"uid-{name}", "labels": {"app": "x"}},
         "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [
             {"name": port_name, "containerPort": port, "protocol": "TCP"}]}]},
         "status": {"phase": phase, "podIP": ip, "conditions": [
             {"type": "Ready", "status": "True" if ready else "False",
              "lastTransitionTime": "2024-01-01T00:00:00Z"}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    if hostname:
        p["spec"]["hostname"] = hostname
    if subdomain:
        p["spec"]["subdomain"] = subdomain
    return p


def svc(**spec):
    s = {"selector": {"app": "x"}, "ports": [{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
    s.update(spec)
    return {"metadata": {"name": "s", "namespace": "d", "uid": "svc-uid"}, "spec": s}


def test_ready_and_not_ready_addresses_with_named_port():
    subsets = desired_subsets(svc(), [pod("a", "10.0.0.2"), pod("b", "10.0.0.1", ready=False)])
    assert subsets == [{"addresses": [{"ip": "10.0.0.2", "nodeName": "n1", "targetRef": {
        "kind": "Pod", "namespace": "d", "name": "a", "uid": "uid-a"}}],
        "notReadyAddresses": [{"ip": "10.0.0.1", "nodeName": "n1", "targetRef": {
            "kind": "Pod", "namespace": "d", "name": "b", "uid": "uid-b"}}],
        "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}]}]


def test_pods_serving_different_ports_get_separate_subsets():
    subsets = desired_subsets(svc(), [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", port=9090)])
    assert sorted(s["ports"][0]["port"] for s in subsets) == [8080, 9090]


def test_unresolvable_named_port_and_terminal_or_terminating_pods_are_left_out():
    pods = [pod("a", "10.0.0.1", port_name="other"), pod("b", "10.0.0.2", phase="Succeeded"),
            pod("c", "10.0.0.3", deleting=True), pod("d", "")]
    assert desired_subsets(svc(), pods) == []


def test_publish_not_ready_addresses_lists_everyone_as_ready():
    subsets = desired_subsets(svc(publishNotReadyAddresses=True), [pod("b", "10.0.0.1", ready=False)])
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.0.0.1"]


def test_hostname_only_under_the_pods_subdomain():
    subsets = desired_subsets(svc(clusterIP="None"), [pod("a", "10.0.0.1", hostname="a", subdomain="s"),
                                                      pod("b", "10.0.0.2", hostname="b", subdomain="other")])
    hosts = {a["ip"]: a.get("hostname") for a in subsets[0]["addresses"]}
    assert hosts == {"10.0.0.1": "a", "10.0.0.2": None}


def test_headless_labels():
    assert eu.managed_labels(svc(clusterIP="None")) == {eu.HEADLESS_LABEL: ""}
    assert eu.managed_labels(svc()) == {}


def test_slice_conditions_for_terminating_pods_and_zone():
    d = desired_endpoints(svc(), [pod("a", "10.0.0.1", deleting=True)], {"n1": "z1"})
    (ports, eps), = d.values()
    assert ports == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert eps[0]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert eps[0]["zone"] == "z1" and eps[0]["nodeName"] == "n1"


class RecordingClient:
    def __init__(self):
        self.calls = []
        self.n = 0

    async def create(self, res, body, ns=None):
        self.n += 1
        body["metadata"]["name"] = f"s-{self.n}"
        body["metadata"]["generation"] = 1
        self.calls.append(("create", len(body["endpoints"])))
        return body

    async def update(self, res, body):
        self.calls.append(("update", body["metadata"]["name"], len(body["endpoints"])))
        return body | {"metadata": body["metadata"] | {"generation": 2}}

    async def delete(self, res, name, ns=None):
        self.calls.append(("delete", name))


def controller(max_per_slice=100):
    ctl = EndpointSliceController.__new__(EndpointSliceController)
    ctl.client, ctl.max_per_slice, ctl._expect = RecordingClient(), max_per_slice, {}
    ctl.recorder = None
    return ctl


def existing(name, ips, ports=({"name": "web", "port": 8080, "protocol": "TCP"},)):
    return {"metadata": {"name": name, "namespace": "d", "ownerReferences": [{"uid": "svc-uid"}]},
            "addressType": "IPv4", "ports": list(ports),
            "endpoints": [{"addresses": [ip], "targetRef": {"uid": f"uid-{name}"}} for name, ip in ips]}


def test_slices_split_at_max_and_placeholder_when_empty():
    ctl = controller(max_per_slice=2)
    pods = [pod(f"p{i}", f"10.0.0.{i}") for i in range(5)]
    asyncio.run(ctl._reconcile_slices("d/s", svc(), desired_endpoints(svc(), pods, {}), [], None))
    assert ctl.client.calls == [("create", 2), ("create", 2), ("create", 1)]
    ctl = controller()
    asyncio.run(ctl._reconcile_slices("d/s", svc(), {}, [existing("old", [("z", "10.0.0.9")])], None))
    assert ctl.client.calls == [("update", "old", 0)]  # reused as the placeholder, not delete + create


def test_new_endpoints_fill_existing_slice_and_gone_ones_leave():
    ctl = controller()
    pods = [pod("a", "10.0.0.1"), pod("b", "10.0.0.2")]
    asyncio.run(ctl._reconcile_slices("d/s", svc(), desired_endpoints(svc(), pods, {}),
                                      [existing("one", [("gone", "10.0.0.7")]), existing("two", [("a", "10.0.0.1")])],
                                      None))
    assert ctl.client.calls == [("update", "two", 2), ("delete", "one")]


def test_resolv_conf_for_cluster_first_default_and_none():
    host = resolvconf.ResolvConf(["192.168.1.1"], ["corp.example"], ["edns0"])
    p = {"metadata": {"namespace": "team"}, "spec": {}}
    conf = resolvconf.for_pod(p, host, cluster_dns=["10.96.0.10"])
    assert conf.render() == ("nameserver 10.96.0.10\nsearch team.svc.cluster.local svc.cluster.local "
                             "cluster.local corp.example\noptions ndots:5\n")
    p["spec"] = {"hostNetwork": True}
    assert resolvconf.for_pod(p, host, cluster_dns=["10.96.0.10"]).nameservers == ["192.168.1.1"]
    p["spec"]["dnsPolicy"] = "ClusterFirstWithHostNet"
    assert resolvconf.for_pod(p, host, cluster_dns=["10.96.0.10"]).nameservers == ["10.96.0.10"]
    p["spec"] = {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.b"],
                                                     "options": [{"name": "ndots", "value": "2"},
                                                                 {"name": "edns0"}]}}
    assert resolvconf.for_pod(p, host, cluster_dns=["10.96.0.10"]).render() == \
        "nameserver 1.1.1.1\nsearch a.b\noptions ndots:2 edns0\n"


def _ready_pod(name: str, rv: str, when: str) -> dict:
    return {"metadata": {"name": name, "resourceVersion": rv},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": when}]}}


def test_trigger_time_is_reported_again_after_a_write_that_failed() -> None:
    from kybern.controllers.endpointutil import TriggerTimeTracker

    svc = {"metadata": {"resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"}}
    t = TriggerTimeTracker()
    assert t.compute("ns/web", svc, []) == "2026-01-01T00:00:00Z"  # published
    pods = [_ready_pod("a", "5", "2026-01-01T00:01:00Z")]
    assert t.compute("ns/web", svc, pods) == "2026-01-01T00:01:00Z"
    t.rollback("ns/web")  # that write failed (409): the retry must report the same change
    assert t.compute("ns/web", svc, pods) == "2026-01-01T00:01:00Z"
    assert t.compute("ns/web", svc, pods) is None  # published: nothing changed since
