"""NetworkPolicies as an nft table (pure; `nft -c` checks the syntax when nft can
be run here)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from kybern.network import netpol_rules as nr

CIDR = "10.244.1.0/24"


def pod(name, ip, ns="d", labels=None, node="n1", ports=None, **spec):
    status = {"podIP": ip, "phase": spec.pop("phase", "Running")}
    return {"metadata": {"namespace": ns, "name": name, "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}], **spec},
            "status": status}


def policy(name, ns="d", **spec):
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


def ns(name, **labels):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


NAMESPACES = [ns("d"), ns("other", team="x"), ns("third")]


def plan_of(policies, pods, namespaces=NAMESPACES, node="n1"):
    return nr.build(policies, pods, namespaces, pod_cidr=CIDR, node_name=node)


def rules_of(plan, ns_name, direction="in"):
    [chain] = [c for c, rules in plan.policy_chains.items()
               if c.startswith(direction) and rules[0] == f'comment "{ns_name}"']
    return plan.policy_chains[chain][1:]


def addresses(plan, ref):
    return plan.sets[ref[1:]] if ref.startswith("@") else [ref]


ACCESS_NGINX = policy("access-nginx", podSelector={"matchLabels": {"app": "nginx"}}, policyTypes=["Ingress"],
                      ingress=[{"from": [{"podSelector": {"matchLabels": {"access": "true"}}}]}])


def test_declare_network_policy_example():
    pods = [pod("nginx", "10.244.1.5", labels={"app": "nginx"}), pod("busybox", "10.244.1.6"),
            pod("busybox2", "10.244.1.7", labels={"access": "true"}),
            pod("elsewhere", "10.244.2.9", labels={"access": "true"}, node="n2"),
            pod("other-ns", "10.244.1.8", ns="other", labels={"access": "true"})]
    plan = plan_of([ACCESS_NGINX], pods)
    assert list(plan.ingress) == ["10.244.1.5"] and plan.egress == {}  # only nginx is isolated
    assert plan.isolated == ["d/nginx"]
    [rule] = rules_of(plan, "d/access-nginx")
    # labelled pods of the policy's namespace, on any node; not those of other namespaces
    assert rule.startswith("ip saddr @") and rule.endswith(" accept")
    assert addresses(plan, rule.split()[2]) == ["10.244.1.7", "10.244.2.9"]
    text = nr.render_nft("kybern-netpol-t", plan)
    assert text.startswith("table inet kybern-netpol-t\ndelete table inet kybern-netpol-t\n")
    assert "ip daddr vmap { 10.244.1.5 : jump pod_" in text
    assert "ip saddr vmap" not in text  # nobody is isolated for egress
    assert "ct state established,related accept" in text  # replies of allowed connections
    assert "ip saddr . ip daddr { 10.244.1.5 . 10.244.1.5 } accept" in text  # a pod reaches itself


def test_only_this_nodes_own_pods_are_isolated():
    pods = [pod("a", "10.244.1.5"), pod("b", "10.244.2.5", node="n2"),  # another node's (its own table)
            pod("host", "10.0.0.1", hostNetwork=True), pod("done", "10.244.1.9", phase="Succeeded"),
            pod("pending", "")]
    plan = plan_of([policy("deny", podSelector={}, policyTypes=["Ingress", "Egress"])], pods)
    assert list(plan.ingress) == list(plan.egress) == ["10.244.1.5"]
    assert plan.policy_chains and all(rules[1:] == [] for rules in plan.policy_chains.values())  # deny all
    text = nr.render_nft("t", plan)
    assert "10.244.2.5" not in text and "10.244.1.9" not in text


def test_policy_types_and_union_of_policies():
    pods = [pod("a", "10.244.1.5", labels={"app": "a"}), pod("b", "10.244.1.6", labels={"app": "b"})]
    egress_only = policy("eg", podSelector={"matchLabels": {"app": "a"}}, policyTypes=["Egress"],
                         egress=[{"ports": [{"protocol": "UDP", "port": 53}]}])
    allow_b = policy("b", podSelector={}, policyTypes=["Ingress"],
                     ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "b"}}}]}])
    allow_80 = policy("web", podSelector={"matchLabels": {"app": "a"}}, policyTypes=["Ingress"],
                      ingress=[{"ports": [{"protocol": "TCP", "port": 80}]}])
    plan = plan_of([egress_only, allow_b, allow_80], pods)
    assert list(plan.egress) == ["10.244.1.5"] and rules_of(plan, "d/eg", "eg") == ["udp dport 53 accept"]
    assert len(plan.ingress["10.244.1.5"]) == 2 and len(plan.ingress["10.244.1.6"]) == 1
    assert rules_of(plan, "d/web") == ["tcp dport 80 accept"]  # no `from`: any source
    text = nr.render_nft("t", plan)
    # the pod chain tries each selecting policy, then drops
    a_chain = [line for line in text.splitlines() if "10.244.1.5 : jump" in line and "daddr" in line][0]
    name = a_chain.split("10.244.1.5 : jump ")[1].split(",")[0].split()[0]
    body = text.split(f"chain {name} {{\n")[1].split("}")[0].split("\n")
    assert [line.strip() for line in body if line.strip()] == [
        f"jump {plan.ingress['10.244.1.5'][0]}", f"jump {plan.ingress['10.244.1.5'][1]}", "drop"]
    # no policyTypes and egress rules: both directions (as the API's defaulting)
    plan = plan_of([policy("both", podSelector={}, egress=[{}])], pods)
    assert set(plan.ingress) == set(plan.egress) == {"10.244.1.5", "10.244.1.6"}


def test_peers_namespace_selector_and_combined():
    pods = [pod("a", "10.244.1.5"), pod("x1", "10.244.1.20", ns="other", labels={"role": "fe"}),
            pod("x2", "10.244.1.21", ns="other"), pod("t1", "10.244.1.30", ns="third", labels={"role": "fe"})]
    ns_only = {"namespaceSelector": {"matchLabels": {"team": "x"}}}
    both = {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                                         "values": ["other", "third"]}]},
            "podSelector": {"matchLabels": {"role": "fe"}}}
    plan = plan_of([policy("p", podSelector={}, policyTypes=["Ingress"], ingress=[{"from": [ns_only, both]}])], pods)
    r1, r2 = rules_of(plan, "d/p")
    assert addresses(plan, r1.split()[2]) == ["10.244.1.20", "10.244.1.21"]  # every pod of team=x
    assert addresses(plan, r2.split()[2]) == ["10.244.1.20", "10.244.1.30"]  # fe pods of other and third
    # a selector matching no pod allows nothing (not everything)
    plan = plan_of([policy("p", podSelector={}, policyTypes=["Ingress"],
                           ingress=[{"from": [{"podSelector": {"matchLabels": {"no": "one"}}}]}])], pods)
    assert rules_of(plan, "d/p") == []


def test_ip_block_except_and_ports():
    pods = [pod("a", "10.244.1.5", ports=[{"name": "http", "containerPort": 8080}]),
            pod("b", "10.244.1.6", ports=[{"name": "http", "containerPort": 9090},
                                          {"name": "dns", "containerPort": 53, "protocol": "UDP"}]),
            pod("c", "10.244.1.7")]
    eg = policy("eg", podSelector={"matchLabels": {}}, policyTypes=["Egress"], egress=[
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.1.2.0/24", "10.3.0.0/16"]}}],
         "ports": [{"protocol": "TCP", "port": "http"}, {"protocol": "UDP", "port": 30000, "endPort": 30100},
                   {"protocol": "SCTP"}]}])
    plan = plan_of([eg], pods)
    ip = "ip daddr 10.0.0.0/8 ip daddr != { 10.1.0.0/16, 10.3.0.0/16 }"  # nested excepts merged
    # the named port is looked up in each destination pod: two numbers here
    assert rules_of(plan, "d/eg", "eg") == [
        f"{ip} ip daddr 10.244.1.5 tcp dport 8080 accept",
        f"{ip} ip daddr 10.244.1.6 tcp dport 9090 accept",
        f"{ip} udp dport 30000-30100 accept",
        f"{ip} meta l4proto sctp accept"]
    # ingress: the named port of the selected pods themselves (protocol must match)
    ing = policy("in", podSelector={}, policyTypes=["Ingress"],
                 ingress=[{"ports": [{"protocol": "TCP", "port": "http"}, {"protocol": "TCP", "port": "dns"}]}])
    plan = plan_of([ing], pods)
    assert rules_of(plan, "d/in") == ["ip daddr 10.244.1.5 tcp dport 8080 accept",
                                      "ip daddr 10.244.1.6 tcp dport 9090 accept"]
    # an IPv6 block matches nothing on this IPv4 pod network
    plan = plan_of([policy("v6", podSelector={}, policyTypes=["Ingress"],
                           ingress=[{"from": [{"ipBlock": {"cidr": "fd00::/8"}}]}])], pods)
    assert rules_of(plan, "d/v6") == []


def test_relevant_changes_only():
    a = pod("a", "10.244.1.5", labels={"x": "1"})
    b = {**a, "status": {**a["status"], "conditions": [{"type": "Ready", "status": "True"}]}}
    assert nr.relevant(a) == nr.relevant(b)
    assert nr.relevant(a) != nr.relevant({**a, "metadata": {**a["metadata"], "labels": {"x": "2"}}})
    assert nr.relevant(a) != nr.relevant({**a, "status": {"podIP": "10.244.1.6"}})


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="nft -c needs root and nft")
def test_nft_accepts_the_script():
    pods = [pod(f"p{i}", f"10.244.1.{i + 2}", labels={"app": f"a{i % 3}"},
                ports=[{"name": "http", "containerPort": 80 + i % 2}]) for i in range(12)]
    pols = [ACCESS_NGINX,
            policy("deny", podSelector={"matchLabels": {"app": "a0"}}, policyTypes=["Ingress", "Egress"]),
            policy("mixed", podSelector={"matchLabels": {"app": "a1"}}, policyTypes=["Ingress", "Egress"],
                   ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "a2"}}},
                                      {"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}],
                             "ports": [{"protocol": "TCP", "port": "http"}, {"protocol": "SCTP", "port": 9}]}],
                   egress=[{"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "UDP", "port": 53}]},
                           {"ports": [{"protocol": "TCP", "port": "http"}]}])]
    script = nr.render_nft("kybern-netpol-unittest", plan_of(pols, pods))
    p = subprocess.run(["nft", "-c", "-f", "-"], input=script, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr + script
