"""NetworkPolicy validation with upstream's field paths and messages
(pkg/apis/networking/validation ValidateNetworkPolicySpec)."""

from __future__ import annotations

from kybern.api.networking import NetworkPolicyStrategy

S = NetworkPolicyStrategy()


def causes(spec, old=None):
    obj = {"metadata": {"name": "p", "namespace": "d"}, "spec": spec}
    S.default(obj)
    found = S.validate_update(obj, {"spec": old}) if old is not None else S.validate(obj)
    return [(c["field"], c["message"]) for c in found]


def test_valid_policies_have_no_causes():
    assert causes({"podSelector": {"matchLabels": {"app": "nginx"}},
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"access": "true"}}}]}]}) == []
    assert causes({"podSelector": {}, "egress": [{"to": [
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
        {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
         "podSelector": {}}],
        "ports": [{"port": "http"}, {"port": 32000, "endPort": 32768, "protocol": "UDP"}, {"protocol": "SCTP"}]}],
        "policyTypes": ["Ingress", "Egress"]}) == []


def test_ports():
    assert causes({"ingress": [{"ports": [
        {"protocol": "ICMP"}, {"port": 0}, {"port": 80, "endPort": 79}, {"port": "http", "endPort": 90},
        {"endPort": 90}, {"port": "Web_1"}]}]}) == [
        ("spec.ingress[0].ports[0].protocol", 'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"'),
        ("spec.ingress[0].ports[1].port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
        ("spec.ingress[0].ports[2].endPort", "Invalid value: 79: must be greater than or equal to `port`"),
        ("spec.ingress[0].ports[3].endPort", "Invalid value: 90: may not be specified when `port` is non-numeric"),
        ("spec.ingress[0].ports[4].endPort", "Invalid value: 90: may not be specified when `port` is not specified"),
        ("spec.ingress[0].ports[5].port", 'Invalid value: "Web_1": must contain only alpha-numeric characters '
                                          "(a-z, 0-9), and hyphens (-)"),
    ]


def test_peers_and_ip_blocks():
    assert causes({"egress": [{"to": [
        {}, {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
        {"ipBlock": {"cidr": "10.0.0.1"}}, {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.0.0/16", "10.2.0.0/24"]}},
        {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}]}]}) == [
        ("spec.egress[0].to[0]", "Required value: must specify a peer"),
        ("spec.egress[0].to[1]", "Forbidden: may not specify both ipBlock and another peer"),
        ("spec.egress[0].to[2].ipBlock.cidr", 'Invalid value: "10.0.0.1": must be a valid CIDR value, '
                                              "(e.g. 10.9.8.0/24 or 2001:db8::/64)"),
        ("spec.egress[0].to[3].ipBlock.except[0]", 'Invalid value: "10.0.0.0/16": must be a strict subset of `cidr`'),
        ("spec.egress[0].to[3].ipBlock.except[1]", 'Invalid value: "10.2.0.0/24": must be a strict subset of `cidr`'),
        ("spec.egress[0].to[4].podSelector.matchExpressions[0].values",
         "Required value: must be specified when `operator` is 'In' or 'NotIn'"),
    ]
    # a CIDR the stored policy already had is left alone on update, as upstream
    bad = {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.1"}}]}]}
    assert causes(bad, old=bad) == []


def test_policy_types():
    assert causes({"policyTypes": ["Ingress", "Sideways"]}) == [
        ("spec.policyTypes[1]", 'Unsupported value: "Sideways": supported values: "Ingress", "Egress"')]
    assert causes({"policyTypes": ["Ingress", "Egress", "Ingress"]}) == [
        ("spec.policyTypes", 'Invalid value: []networking.PolicyType{"Ingress", "Egress", "Ingress"}: '
                             "may not specify more than two policyTypes")]
