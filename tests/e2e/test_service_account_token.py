"""A pod's service account credentials, as upstream's ServiceAccount admission
and kubelet give them: the `kube-api-access-*` projected volume at
/var/run/secrets/kubernetes.io/serviceaccount with a real bound token, the
cluster's CA and the namespace (what in-cluster clients read), unless
automountServiceAccountToken says no."""

from __future__ import annotations

import json
import os

import pytest

MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def pod(name: str, **spec: object) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "initContainers": [{"name": "init", "image": "demo:v1", "command": ["true"]}],
        "containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"]}], **spec}})


def test_token_volume_is_added_as_upstream(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=pod("mounted"))
    spec = cluster.kjson("get", *ns, "pod", "mounted")["spec"]
    [vol] = spec["volumes"]
    assert vol["name"].startswith("kube-api-access-") and len(vol["name"]) == len("kube-api-access-") + 5
    assert vol["projected"] == {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
    want = [{"name": vol["name"], "readOnly": True, "mountPath": MOUNT}]
    assert spec["initContainers"][0]["volumeMounts"] == want and spec["containers"][0]["volumeMounts"] == want
    assert spec["serviceAccountName"] == "default"

    # no volume: the pod says no; the service account says no; a container mounting its own there keeps it
    cluster.kubectl("apply", *ns, "-f", "-", input=pod("pod-says-no", automountServiceAccountToken=False))
    assert "volumes" not in cluster.kjson("get", *ns, "pod", "pod-says-no")["spec"]
    cluster.kubectl("apply", *ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "quiet"},
        "automountServiceAccountToken": False}))
    cluster.kubectl("apply", *ns, "-f", "-", input=pod("sa-says-no", serviceAccountName="quiet"))
    assert "volumes" not in cluster.kjson("get", *ns, "pod", "sa-says-no")["spec"]
    # ... unless the pod says yes
    cluster.kubectl("apply", *ns, "-f", "-", input=pod("pod-overrides", serviceAccountName="quiet",
                                                      automountServiceAccountToken=True))
    assert len(cluster.kjson("get", *ns, "pod", "pod-overrides")["spec"]["volumes"]) == 1
    own = json.loads(pod("own-mount"))
    own["spec"]["volumes"] = [{"name": "mine", "emptyDir": {}}]
    own["spec"]["containers"][0]["volumeMounts"] = [{"name": "mine", "mountPath": MOUNT}]
    cluster.kubectl("apply", *ns, "-f", "-", input=json.dumps(own))
    spec = cluster.kjson("get", *ns, "pod", "own-mount")["spec"]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "mine", "mountPath": MOUNT}]
    assert [m["mountPath"] for m in spec["initContainers"][0]["volumeMounts"]] == [MOUNT]
    assert len(spec["volumes"]) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="the absolute path needs a mount namespace (root)")
def test_the_container_reads_a_working_token(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=pod("reader"))
    cluster.kubectl("wait", *ns, "--for=condition=Ready", "pod/reader", "--timeout=60s")

    def read(f: str) -> str:
        return cluster.kubectl("exec", *ns, "reader", "--", "cat", f"{MOUNT}/{f}").stdout

    assert read("namespace") == namespace
    ca = cluster.kjson("get", *ns, "configmap", "kube-root-ca.crt")["data"]["ca.crt"]
    assert read("ca.crt") == ca
    token = read("token")
    # the token is the pod's service account's: the API server authenticates it
    who = cluster.kubectl("auth", "whoami", "--token", token, "-o", "json").stdout
    assert json.loads(who)["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:default"


def test_the_kubernetes_service_leads_to_this_api_server(cluster):
    """What in-cluster clients dial (KUBERNETES_SERVICE_HOST:PORT = 10.96.0.1:443) is
    this API server: the Service's endpoints hold its address and port, and its
    certificate is valid for 10.96.0.1."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    url = urlsplit(cluster.server)
    ep = cluster.kjson("get", "-n", "default", "endpoints", "kubernetes")
    assert ep["subsets"] == [{"addresses": [{"ip": url.hostname}],
                              "ports": [{"name": "https", "port": url.port, "protocol": "TCP"}]}]
    sl = cluster.kjson("get", "-n", "default", "endpointslice", "kubernetes")
    assert sl["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert sl["endpoints"][0]["addresses"] == [url.hostname] and sl["ports"][0]["port"] == url.port
    svc = cluster.kjson("get", "-n", "default", "service", "kubernetes")["spec"]
    assert svc["clusterIP"] == "10.96.0.1" and svc["ports"][0]["targetPort"] == url.port
    ctx = ssl.create_default_context(cafile=str(cluster.dir / "data" / "pki" / "ca.crt"))
    with socket.create_connection((url.hostname, url.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="10.96.0.1") as tls:  # verifies the IP SAN
        assert tls.version()


@pytest.mark.skipif(os.geteuid() != 0, reason="the token's absolute path needs a mount namespace (root)")
def test_an_in_cluster_client_works_from_a_pod(cluster, namespace):
    """What an operator deployed in the cluster does: the official client's in-cluster
    config (KUBERNETES_SERVICE_HOST/PORT, the token and CA files) from inside a pod."""
    import sys

    script = ("from kubernetes import client, config\n"
              "config.load_incluster_config()\n"
              "ns = open('/var/run/secrets/kubernetes.io/serviceaccount/namespace').read()\n"
              "print(sorted(p.metadata.name for p in client.CoreV1Api().list_namespaced_pod(ns).items))\n")
    # as an operator's manifests do: a Role and RoleBinding give its service account the rights (RBAC)
    cluster.kubectl("create", "role", "pod-lister", "--verb=list", "--resource=pods", "-n", namespace)
    cluster.kubectl("create", "rolebinding", "operator-lists-pods", "--role=pod-lister",
                    f"--serviceaccount={namespace}:default", "-n", namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "operator"}, "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "demo:v1", "command": [sys.executable, "-c", script]}]}}))
    cluster.wait_for(lambda: cluster.kjson("get", "-n", namespace, "pod", "operator")["status"].get("phase")
                     in ("Succeeded", "Failed"), timeout=60, what="the in-cluster client's pod done")
    logs = cluster.kubectl("logs", "-n", namespace, "operator").stdout
    assert logs.strip() == "['operator']", logs
