"""The service proxy's model and rulesets (pure; `nft -c` checks the syntax when
nft can be run here)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from kybern.network import proxy_rules as pr


def svc(name, typ="ClusterIP", ip="10.96.0.20", ports=None, **spec):
    return {"metadata": {"namespace": "d", "name": name},
            "spec": {"type": typ, "clusterIP": ip, "ports": ports or [{"name": "http", "port": 80}], **spec}}


def slice_(svc_name, eps, port=8080, name="http"):
    return {"metadata": {"namespace": "d", "name": f"{svc_name}-x", "labels": {pr.SERVICE_NAME_LABEL: svc_name}},
            "addressType": "IPv4", "ports": [{"name": name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": cond} for ip, cond in eps]}


def test_ready_endpoints_then_terminating_fallback():
    ready = {"ready": True, "serving": True, "terminating": False}
    draining = {"ready": False, "serving": True, "terminating": True}
    unready = {"ready": False, "serving": False, "terminating": False}
    [sp] = pr.build([svc("a")], [slice_("a", [("10.244.0.2", ready), ("10.244.0.3", draining),
                                               ("10.244.0.4", unready)])])
    assert sp.endpoints == [("10.244.0.2", 8080)]
    [sp] = pr.build([svc("a")], [slice_("a", [("10.244.0.3", draining), ("10.244.0.4", unready)])])
    assert sp.endpoints == [("10.244.0.3", 8080)]  # connections drain to terminating-but-serving pods
    [sp] = pr.build([svc("a")], [slice_("a", [("10.244.0.2", {})])])  # nil conditions mean ready
    assert sp.endpoints == [("10.244.0.2", 8080)]


def test_ports_match_by_name_and_kinds_of_addresses():
    s = svc("lb", "LoadBalancer", ports=[{"name": "http", "port": 80, "nodePort": 30080},
                                         {"name": "other", "port": 81, "nodePort": 30081}],
            sessionAffinity="ClientIP")
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "127.240.0.3"}]}}
    ports = pr.build([s, svc("headless", ip="None"), svc("ext", "ExternalName", ip=None)],
                     [slice_("lb", [("10.244.0.2", {"ready": True})])])
    assert [p.key for p in ports] == ["d/lb:http", "d/lb:other"]
    http, other = ports
    assert http.endpoints and not other.endpoints
    assert (http.node_port, http.lb_ips, http.affinity) == (30080, ["127.240.0.3"], pr.DEFAULT_AFFINITY_TIMEOUT)


def test_nft_ruleset():
    s = svc("web", "NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    ports = pr.build([s, svc("empty", ip="10.96.0.21")],
                     [slice_("web", [("10.244.0.2", {}), ("10.244.0.3", {})])])
    text = pr.render_nft("kybern-t", ports, "10.244.0.0/16", "10.96.0.0/12")
    assert text.startswith("table ip kybern-t\ndelete table ip kybern-t\n")  # one atomic replace
    assert "numgen random mod 2 vmap" in text and "dnat to 10.244.0.3:8080" in text
    assert "fib daddr type local tcp dport 30080 jump" in text
    assert "ip daddr 10.96.0.21 tcp dport 80 reject" in text  # no endpoints
    assert "ip daddr 10.96.0.0/12 reject" in text
    if os.geteuid() == 0 and shutil.which("nft"):
        p = subprocess.run(["nft", "-c", "-f", "-"], input=text, text=True, capture_output=True, check=False)
        assert p.returncode == 0, p.stderr


def test_iptables_ruleset_probabilities():
    ports = pr.build([svc("web", sessionAffinity="ClientIP")],
                     [slice_("web", [(f"10.244.0.{i}", {}) for i in (2, 3, 4)])])
    text = pr.render_iptables("KYBt", ports, "10.244.0.0/16", "10.96.0.0/12")
    assert "--probability 0.3333333333" in text and "--probability 0.5000000000" in text
    assert text.count("DNAT --to-destination") == 3 and "-m recent" in text
    if os.geteuid() == 0 and shutil.which("iptables-restore"):
        p = subprocess.run(["iptables-restore", "--test", "--noflush"], input=text, text=True, capture_output=True, check=False)
        assert p.returncode == 0, p.stderr


def test_pod_traffic_is_the_own_nodes_once_its_pod_cidr_is_known():
    """Several clusters on one machine all answer on 10.96.0.1: a node's rules take
    its own pods' routed traffic and what comes from outside the cluster CIDR."""
    ports = pr.build([svc("web")], [slice_("web", [("10.244.3.2", {})])])
    nft = pr.render_nft("kybern-t", ports, "10.244.0.0/16", "10.96.0.0/12", "10.244.3.0/24")
    pre = nft[nft.index("chain nat_prerouting"):].split("}")[0]
    assert "ip saddr 10.244.3.0/24 jump services" in pre and "ip saddr != 10.244.0.0/16 jump services" in pre
    assert pre.count("jump services") == 2
    assert "\n    jump services" in pr.render_nft("kybern-t", ports, "10.244.0.0/16", "10.96.0.0/12")  # unknown: all
    ipt = pr.render_iptables("KYBt", ports, "10.244.0.0/16", "10.96.0.0/12", "10.244.3.0/24")
    assert "-A KYBT-PREROUTING -s 10.244.3.0/24 -j KYBT-SERVICES" in ipt
    assert "-A KYBT-PREROUTING ! -s 10.244.0.0/16 -j KYBT-SERVICES" in ipt
    for text, cmd in ((nft, ["nft", "-c", "-f", "-"]), (ipt, ["iptables-restore", "--test", "--noflush"])):
        if os.geteuid() == 0 and shutil.which(cmd[0]):
            p = subprocess.run(cmd, input=text, text=True, capture_output=True, check=False)
            assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("cidr,index", [("10.244.0.0/24", 0), ("10.244.7.0/24", 7), ("10.245.0.0/24", None),
                                        ("10.244.0.0/25", None)])
def test_pod_cidr_index(cidr, index):
    from kybern.network.podnet import index_of, subnet_for

    assert index_of(cidr) == index
    if index is not None:
        assert str(subnet_for(index)) == cidr


def _kernel_accepts(nft: str, ipt: str) -> None:
    if os.geteuid() != 0:
        return
    for text, cmd in ((nft, ["nft", "-c", "-f", "-"]), (ipt, ["iptables-restore", "--test", "--noflush"])):
        if shutil.which(cmd[0]):
            p = subprocess.run(cmd, input=text, text=True, capture_output=True, check=False)
            assert p.returncode == 0, p.stderr


def test_traffic_policies_local_use_this_nodes_endpoints():
    s = svc("web", "LoadBalancer", ports=[{"name": "http", "port": 80, "nodePort": 30080}],
            externalTrafficPolicy="Local", internalTrafficPolicy="Local")
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "127.240.0.3"}]}}
    sl = slice_("web", [("10.244.0.2", {}), ("10.244.1.2", {})])
    sl["endpoints"][0]["nodeName"], sl["endpoints"][1]["nodeName"] = "n1", "n2"
    [sp] = pr.build([s], [sl], "n1")
    assert sp.endpoints == [("10.244.0.2", 8080), ("10.244.1.2", 8080)]
    assert sp.local_endpoints == [("10.244.0.2", 8080)] and sp.internal_local and sp.external_local
    [plain] = pr.build([s], [sl])  # a proxy that does not know its node: every policy is Cluster
    assert plain.local_endpoints is None and not plain.external_local

    nft = pr.render_nft("kybern-t", [sp], "10.244.0.0/16", "10.96.0.0/12")
    ext = nft[nft.index(f"chain ext_{sp.ident}"):]
    ext = ext[:ext.index("}")]
    # pods and the node itself: every endpoint; anyone else: this node's, source kept (no masquerade mark)
    assert f"ip saddr 10.244.0.0/16 goto svc_{sp.ident}" in ext and f"fib saddr type local goto svc_{sp.ident}" in ext
    assert ext.strip().splitlines()[-1].strip() == f"goto ep_{sp.ep_ident(('10.244.0.2', 8080))}"
    assert f"ip daddr 10.96.0.20 tcp dport 80 jump int_{sp.ident}" in nft
    assert f"ip daddr 127.240.0.3 tcp dport 80 jump ext_{sp.ident}" in nft
    ipt = pr.render_iptables("KYBT", [sp], "10.244.0.0/16", "10.96.0.0/12")
    _kernel_accepts(nft, ipt)

    # no endpoint on this node: dropped (there are endpoints elsewhere, so not rejected)
    [far] = pr.build([s], [sl], "n3")
    nft = pr.render_nft("kybern-t", [far], "10.244.0.0/16", "10.96.0.0/12")
    assert nft.count('drop comment "d/web:http has no local endpoints"') == 2  # internal and external
    ipt = pr.render_iptables("KYBT", [far], "10.244.0.0/16", "10.96.0.0/12")
    assert f"--or-mark {pr.DROP_MARK:#x}" in ipt and f"--mark {pr.DROP_MARK:#x}/{pr.DROP_MARK:#x} -j DROP" in ipt
    _kernel_accepts(nft, ipt)


def test_local_policy_falls_back_to_this_nodes_terminating_endpoints():
    s = svc("web", "NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}], externalTrafficPolicy="Local")
    sl = slice_("web", [("10.244.0.2", {"ready": False, "serving": True, "terminating": True}),
                        ("10.244.1.2", {"ready": True})])
    sl["endpoints"][0]["nodeName"], sl["endpoints"][1]["nodeName"] = "n1", "n2"
    [sp] = pr.build([s], [sl], "n1")
    assert sp.endpoints == [("10.244.1.2", 8080)] and sp.local_endpoints == [("10.244.0.2", 8080)]
    assert f"dnat to 10.244.0.2:8080" in pr.render_nft("kybern-t", [sp], "10.244.0.0/16", "10.96.0.0/12")
