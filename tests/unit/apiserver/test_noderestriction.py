"""NodeRestriction's pure parts and the CSR approver's recognizers."""

from __future__ import annotations

import base64

from kybern.apiserver.nodegraph import node_of
from kybern.apiserver.noderestriction import _forbidden_labels
from kybern.controllers.csrapproving import recognized
from kybern.node.bootstrap import request


def test_node_identities_but_not_the_join_token():
    assert node_of({"username": "system:node:a", "groups": ["system:nodes"]}) == "a"
    assert node_of({"username": "system:node:a", "groups": ["system:authenticated"]}) is None
    assert node_of({"username": "system:node:kybern-node-token", "groups": ["system:nodes"]}) is None
    assert node_of({"username": "alice", "groups": ["system:nodes"]}) is None


def test_kubelet_labels_allowed_others_in_kubernetes_namespaces_not():
    assert _forbidden_labels({"kubernetes.io/hostname": "a", "topology.kubernetes.io/zone": "z",
                              "node.kubernetes.io/exclude-from-external-load-balancers": "",
                              "example.com/gpu": "1"}, {}) == []
    assert _forbidden_labels({"node-role.kubernetes.io/worker": "", "node-restriction.kubernetes.io/x": "y"},
                             {}) == ["node-restriction.kubernetes.io/x", "node-role.kubernetes.io/worker"]
    assert _forbidden_labels({}, {"foo.k8s.io/removed": "1"}) == ["foo.k8s.io/removed"]


def _csr(name: str, username: str, usages: list[str], signer: str = "kubernetes.io/kube-apiserver-client-kubelet"):
    _key, pem = request(name)
    return {"spec": {"request": base64.b64encode(pem).decode(), "signerName": signer, "usages": usages,
                     "username": username}}


def test_approver_recognizes_node_client_csrs_and_self_renewals():
    usages = ["digital signature", "client auth"]
    assert [r[0] for r in recognized(_csr("a", "system:node:kybern-node-token", usages))] == ["nodeclient"]
    assert [r[0] for r in recognized(_csr("a", "system:node:a", usages))] == ["selfnodeclient", "nodeclient"]
    assert recognized(_csr("a", "x", ["client auth", "server auth"])) == []
    assert recognized(_csr("a", "x", usages, signer="kubernetes.io/kube-apiserver-client")) == []
