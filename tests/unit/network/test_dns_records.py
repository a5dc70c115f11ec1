"""The cluster DNS zone: which names answer what, from Services and EndpointSlices."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from kybern.network.dns import DNSServer
from kybern.network.dns_records import ClusterRecords


def svc(name, ns="default", cluster_ip="10.96.0.20", ports=None, **spec):
    s = {"clusterIP": cluster_ip, "ports": ports or [{"name": "http", "port": 80, "protocol": "TCP"}]}
    if cluster_ip and cluster_ip != "None":
        s["clusterIPs"] = [cluster_ip]
    s.update(spec)
    return {"metadata": {"name": name, "namespace": ns}, "spec": s}


def eps(svc_name, endpoints, ns="default", ports=None, name=None):
    return {"metadata": {"name": name or f"{svc_name}-abcde", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc_name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": ports or [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def ep(ip, ready=True, hostname=None):
    e = {"addresses": [ip], "conditions": {"ready": ready, "serving": ready, "terminating": False}}
    if hostname:
        e["hostname"] = hostname
    return e


@pytest.fixture
def zone():
    z = ClusterRecords()
    z.set_service(svc("web"))
    z.set_service(svc("db", cluster_ip="None"))
    z.set_slice(eps("db", [ep("10.244.0.5", hostname="db-0"), ep("10.244.0.6", hostname="db-1"),
                           ep("10.244.0.7", ready=False, hostname="db-2")], ports=[
        {"name": "http", "port": 5432, "protocol": "TCP"}]))
    z.set_service({"metadata": {"name": "ext", "namespace": "default"},
                   "spec": {"type": "ExternalName", "externalName": "example.com"}})
    return z


def ask(z, name, rdtype="A"):
    return z.lookup(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))


def values(ans):
    return sorted(r.to_text() for rr in ans.answer for r in rr)


def test_service_a_is_the_cluster_ip(zone):
    assert values(ask(zone, "web.default.svc.cluster.local.")) == ["10.96.0.20"]


def test_headless_service_answers_ready_endpoints_only(zone):
    assert values(ask(zone, "db.default.svc.cluster.local.")) == ["10.244.0.5", "10.244.0.6"]


def test_pod_hostname_under_headless_service(zone):
    assert values(ask(zone, "db-1.db.default.svc.cluster.local.")) == ["10.244.0.6"]
    assert values(ask(zone, "10-244-0-5.db.default.svc.cluster.local.")) == ["10.244.0.5"]
    assert ask(zone, "db-2.db.default.svc.cluster.local.").rcode == dns.rcode.NXDOMAIN


def test_srv_for_named_port(zone):
    a = ask(zone, "_http._tcp.web.default.svc.cluster.local.", "SRV")
    assert values(a) == ["0 100 80 web.default.svc.cluster.local."]
    assert [r.to_text() for rr in a.additional for r in rr] == ["10.96.0.20"]
    h = ask(zone, "_http._tcp.db.default.svc.cluster.local.", "SRV")
    assert values(h) == ["0 50 5432 db-0.db.default.svc.cluster.local.",
                         "0 50 5432 db-1.db.default.svc.cluster.local."]
    assert ask(zone, "_nope._tcp.web.default.svc.cluster.local.", "SRV").rcode == dns.rcode.NXDOMAIN


def test_external_name_is_a_cname(zone):
    assert values(ask(zone, "ext.default.svc.cluster.local.")) == ["example.com."]


def test_pod_records_spell_their_ip(zone):
    assert values(ask(zone, "10-244-1-9.default.pod.cluster.local.")) == ["10.244.1.9"]


def test_unknown_names_are_nxdomain_with_soa(zone):
    a = ask(zone, "nope.default.svc.cluster.local.")
    assert a.rcode == dns.rcode.NXDOMAIN
    assert a.authority[0].rdtype == dns.rdatatype.SOA
    assert ask(zone, "web.other.svc.cluster.local.").rcode == dns.rcode.NXDOMAIN


def test_known_name_other_type_is_nodata(zone):
    a = ask(zone, "web.default.svc.cluster.local.", "AAAA")
    assert a.rcode == dns.rcode.NOERROR and not a.answer and a.authority


def test_names_outside_the_zone_are_not_ours(zone):
    assert ask(zone, "example.com.") is None


def test_reverse_lookup_of_cluster_ip(zone):
    assert values(ask(zone, "20.0.96.10.in-addr.arpa.", "PTR")) == ["web.default.svc.cluster.local."]
    assert ask(zone, "1.2.3.4.in-addr.arpa.", "PTR") is None


def test_slices_follow_updates_and_deletes(zone):
    s = eps("db", [ep("10.244.0.9")], name="db-abcde", ports=[{"name": "http", "port": 5432, "protocol": "TCP"}])
    zone.set_slice(s)
    assert values(ask(zone, "db.default.svc.cluster.local.")) == ["10.244.0.9"]
    zone.delete_slice(s)
    assert ask(zone, "db.default.svc.cluster.local.").answer == []


async def test_server_answers_wire_queries_and_refuses_without_upstream(zone):
    server = DNSServer(None, upstreams=[])
    server.records = zone
    q = dns.message.make_query("web.default.svc.cluster.local.", "A")
    r = dns.message.from_wire(await server.handle(q.to_wire()))
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert [x.to_text() for x in r.answer[0]] == ["10.96.0.20"]
    q = dns.message.make_query("example.com.", "A")
    r = dns.message.from_wire(await server.handle(q.to_wire()))
    assert r.rcode() == dns.rcode.REFUSED


async def test_big_udp_answers_are_truncated():
    z = ClusterRecords()
    z.set_service(svc("many", cluster_ip="None"))
    z.set_slice(eps("many", [ep(f"10.244.{i // 250}.{i % 250 + 1}") for i in range(100)]))
    server = DNSServer(None, upstreams=[])
    server.records = z
    q = dns.message.make_query("many.default.svc.cluster.local.", "A", use_edns=False)
    r = dns.message.from_wire(await server.handle(q.to_wire()))
    assert r.flags & dns.flags.TC
    r = dns.message.from_wire(await server.handle(q.to_wire(), tcp=True))
    assert len(r.answer[0]) == 100
