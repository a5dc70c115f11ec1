"""Node identities, as kubeadm clusters have them: the node agent bootstraps a client
certificate for system:node:NAME through a CSR that the csrapproving controller
approves and csrsigning issues; with it, NodeRestriction lets the node write only
its own Node, Lease and pods (upstream's messages)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import KUBECTL

pytestmark = pytest.mark.e2e


def test_a_node_has_its_own_identity_and_is_restricted_to_its_own_objects(cluster, namespace, tmp_path):
    node = cluster.kjson("get", "nodes")["items"][0]["metadata"]["name"]
    csrs = [c for c in cluster.kjson("get", "csr")["items"]
            if c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"]
    assert csrs and all(c["metadata"]["name"].startswith("node-csr-") for c in csrs)
    assert any(cond["reason"] == "AutoApproved" and cond["message"] ==
               "Auto approving kubelet client certificate after SubjectAccessReview."
               for c in csrs for cond in c["status"]["conditions"])
    assert "Approved,Issued" in cluster.kubectl("get", "csr").stdout

    pki = cluster.dir / "data" / "node" / "pki"
    kubeconfig = tmp_path / "node.kubeconfig"
    base = [KUBECTL, "--kubeconfig", str(kubeconfig)]
    for args in (["set-cluster", "c", "--server", cluster.server,
                  "--certificate-authority", str(cluster.dir / "data" / "pki" / "ca.crt")],
                 ["set-credentials", "n", "--client-certificate", str(pki / "kubelet-client.crt"),
                  "--client-key", str(pki / "kubelet-client.key")],
                 ["set-context", "c", "--cluster", "c", "--user", "n"], ["use-context", "c"]):
        subprocess.run([*base, "config", *args], check=True, capture_output=True)

    def as_node(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, input=input, timeout=60)

    who = json.loads(as_node("auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert who["username"] == f"system:node:{node}" and "system:nodes" in who["groups"]
    assert as_node("get", "pods", "-A").returncode == 0  # reading is not narrowed

    cases = [
        (("label", "node", node, "node-role.kubernetes.io/worker="),
         f'nodes "{node}" is forbidden: is not allowed to modify labels: node-role.kubernetes.io/worker'),
        (("taint", "node", node, "k=v:NoSchedule"),
         f'nodes "{node}" is forbidden: node "{node}" is not allowed to modify taints'),
        (("run", "plain", "-n", namespace, "--image=demo:v1"),
         f'pods "plain" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, '
         f'node "{node}" can only create mirror pods'),
        (("delete", "lease", "-n", "kube-node-lease", "someone-else"),
         'leases.coordination.k8s.io "someone-else" is forbidden: User "system:node:' + node + '" cannot delete '
         'resource "leases" in API group "coordination.k8s.io" in the namespace "kube-node-lease": can only '
         "access node lease with the same name as the requesting node"),
    ]
    for args, message in cases:
        p = as_node(*args)
        assert p.returncode != 0 and message in p.stderr, (args, p.stderr)
    other = json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "not-me"}})
    p = as_node("create", "-f", "-", input=other)
    assert f'node "{node}" is not allowed to modify node "not-me"' in p.stderr
    # a pod bound to another node: its status and its deletion are not this node's
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "elsewhere"},
        "spec": {"nodeName": "no-such-node", "containers": [{"name": "c", "image": "demo:v1"}]}}))
    p = as_node("delete", "pod", "elsewhere", "-n", namespace, "--wait=false")
    assert f'node "{node}" can only delete pods with spec.nodeName set to itself' in p.stderr
    # the Node authorizer's graph: a secret or config map only through a pod bound to this node
    cluster.kubectl("create", "secret", "generic", "used", "--from-literal=k=v", "-n", namespace)
    cluster.kubectl("create", "secret", "generic", "unused", "--from-literal=k=v", "-n", namespace)
    cluster.kubectl("create", "configmap", "settings", "--from-literal=k=v", "-n", namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "here"},
        "spec": {"nodeName": node, "containers": [{
            "name": "c", "image": "demo:v1", "command": ["sleep", "3600"],
            "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "used", "key": "k"}}}],
            "envFrom": [{"configMapRef": {"name": "settings"}}]}]}}))
    assert as_node("get", "secret", "used", "-n", namespace).returncode == 0
    assert as_node("get", "configmap", "settings", "-n", namespace).returncode == 0
    no_relation = f"no relationship found between node '{node}' and this object"
    p = as_node("get", "secret", "unused", "-n", namespace)
    assert f'secrets "unused" is forbidden: User "system:node:{node}" cannot get resource "secrets" in API ' \
           f'group "" in the namespace "{namespace}": {no_relation}' in p.stderr, p.stderr
    assert "No Object name found" in as_node("get", "secrets", "-n", namespace).stderr
    p = as_node("create", "token", "someone", "-n", namespace)  # no pod here runs as it
    assert no_relation in p.stderr, p.stderr
    p = as_node("create", "token", "default", "-n", namespace)  # "here" runs as it: NodeRestriction's turn
    assert 'serviceaccounts "default" is forbidden: node requested token not bound to a pod' in p.stderr, p.stderr
    # its own Node it may still label (outside the restricted prefixes)
    assert as_node("label", "node", node, "example.com/ok=yes").returncode == 0
    cluster.kubectl("label", "node", node, "example.com/ok-")


def test_the_agent_keeps_no_x509_library_after_its_bootstrap(cluster):
    """The certificate bootstrap runs in a child that exits: the long-running agent
    does not carry cryptography's ~8 MB (issue 4's idle figure is <= 60 MB)."""
    import psutil

    from tests.conftest import children_running

    [agent] = [p for p in children_running(psutil.Process(cluster.proc.pid), "agent") if "agent" in p.cmdline()]
    maps = {m.path for m in agent.memory_maps()}
    assert maps and not [m for m in maps if "/cryptography/" in m], sorted(m for m in maps if "cryptography" in m)
    assert (cluster.dir / "data" / "node" / "pki" / "kubelet-client.crt").exists()


def test_an_agent_joins_with_a_bootstrap_token(cluster, tmp_path):
    """`kybern token create --print-join-command` (as kubeadm's) prints a join command with a
    bootstrap token and the CA's public key hash: the agent learns the CA from the signed
    kube-public/cluster-info (no ca.crt copied), its CSR is requested by
    system:bootstrap:<id>, approved and issued, and the node runs as system:node:<name>. A
    wrong pin, or a deleted token, is refused with kubeadm's words."""
    import re
    import sys

    from tests.conftest import stop_agent

    data = ["--data-dir", str(cluster.dir / "data")]

    def kybern(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kybern.cli.main", *args], capture_output=True, text=True,
                              env=cluster.env, timeout=timeout)

    join = kybern("token", "create", "--ttl", "10m", "--description", "for boot-n", "--print-join-command",
                  *data).stdout.strip()
    m = re.fullmatch(r"kybern agent --server (\S+) --token (\S+) --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64}) "
                     r"--name NAME", join)
    assert m, join
    server, token, pin = m.groups()
    token_id = token.split(".")[0]
    listed = kybern("token", "list", *data).stdout
    assert "TOKEN" in listed and token in listed and "for boot-n" in listed
    assert "system:bootstrappers:kybern:default-node-token" in listed
    info = cluster.kjson("get", "configmap", "-n", "kube-public", "cluster-info")["data"]
    assert f"jws-kubeconfig-{token_id}" in info and f"server: {server}" in info["kubeconfig"]

    def agent(name: str, the_pin: str, the_token: str = token) -> list[str]:
        return ["agent", "--server", server, "--token", the_token, "--discovery-token-ca-cert-hash", the_pin,
                "--name", name, "--data-dir", str(tmp_path / name), "--pod-network", "host"]

    p = kybern(*agent("boot-x", "sha256:" + "0" * 64))
    assert p.returncode == 1 and "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys" \
        in p.stderr, p.stderr
    proc = subprocess.Popen([sys.executable, "-m", "kybern.cli.main", *agent("boot-n", pin)], env=cluster.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        cluster.wait_for(lambda: any(c["type"] == "Ready" and c["status"] == "True" for c in
                                     cluster.kjson("get", "node", "boot-n")["status"]["conditions"]),
                         timeout=60, what="the node joined with a bootstrap token")
        assert (tmp_path / "boot-n" / "pki" / "ca.crt").read_bytes() == \
            (cluster.dir / "data" / "pki" / "ca.crt").read_bytes()
        csrs = cluster.kjson("get", "csr")["items"]
        assert any(c["spec"]["username"] == f"system:bootstrap:{token_id}" and
                   c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet" for c in csrs)
    finally:
        stop_agent(proc)
        cluster.kubectl("delete", "node", "boot-n", "--ignore-not-found")
    assert "deleted" in kybern("token", "delete", token_id, *data).stdout
    cluster.wait_for(lambda: f"jws-kubeconfig-{token_id}" not in cluster.kjson(
        "get", "configmap", "-n", "kube-public", "cluster-info")["data"], timeout=15, what="the signature dropped")
    p = kybern(*agent("boot-m", pin))
    assert p.returncode == 1 and f'This token id "{token_id}" is invalid for this cluster' in p.stderr, p.stderr
    p = kybern("agent", "--server", server, "--token", token, "--ca-file", str(cluster.dir / "data" / "pki" / "ca.crt"),
               "--name", "boot-m", "--data-dir", str(tmp_path / "boot-m2"))
    assert p.returncode == 1 and f"Unauthorized (with bootstrap token {token_id})" in p.stderr, p.stderr
