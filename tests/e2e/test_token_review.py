"""TokenReview (authentication.k8s.io/v1) as webhook authenticators, kube-rbac-proxy and
metrics-server-style servers call it, and `kubectl get cs` (v1 ComponentStatus), both
through the real kubectl and the official Python client; and that discovery, OpenAPI
and `kubectl explain` know both kinds."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client

pytestmark = pytest.mark.e2e

API = "https://kubernetes.default.svc.cluster.local"  # the API server's audience (the issuer)


def _review(cluster, token: str, audiences: list[str] | None = None) -> dict:
    """A TokenReview through the official client, as a dict of its status."""
    api = client.AuthenticationV1Api(cluster.api_client())
    body = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=audiences))
    return api.api_client.sanitize_for_serialization(api.create_token_review(body).status)


def test_token_review_of_service_account_and_static_tokens(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("create", "serviceaccount", "robot", *ns)
    uid = cluster.kjson("get", "serviceaccount", "robot", *ns)["metadata"]["uid"]
    token = cluster.kubectl("create", "token", "robot", *ns).stdout.strip()
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]

    st = _review(cluster, token)
    assert st["authenticated"] is True and st["audiences"] == [API]
    user = st["user"]
    assert (user["username"], user["uid"], user["groups"]) == (f"system:serviceaccount:{namespace}:robot", uid,
                                                                groups)
    [cred] = user["extra"]["authentication.kubernetes.io/credential-id"]
    assert cred.startswith("JTI=") and len(cred) == 4 + 36
    # whoami (SelfSubjectReview) with that token says the same
    who = json.loads(cluster.kubectl("auth", "whoami", "-o", "json", "--token", token).stdout)
    assert who["status"]["userInfo"] == user

    # a token for another audience: not for this API server, for the one that asks for it
    other = cluster.kubectl("create", "token", "robot", *ns, "--audience", "vault").stdout.strip()
    st = _review(cluster, other)
    assert "authenticated" not in st and st["user"] == {}
    assert st["error"] == f'[invalid bearer token, token audiences ["vault"] is invalid for the target audiences ' \
                          f'["{API}"]]'
    st = _review(cluster, other, ["metrics", "vault"])
    assert st["authenticated"] is True and st["audiences"] == ["vault"]
    p = cluster.kubectl("get", "pods", *ns, "--token", other, check=False)
    assert p.returncode == 1 and "Unauthorized" in p.stderr

    # garbage and the admin token; kubectl create -f of a TokenReview -o yaml
    assert _review(cluster, "not-a-token") == {"error": "invalid bearer token", "user": {}}
    admin = yaml.safe_load(cluster.kubeconfig.read_text())["users"][0]["user"]["token"]
    out = yaml.safe_load(cluster.kubectl("create", "-o", "yaml", "-f", "-", input=json.dumps({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": admin}})).stdout)
    assert out["kind"] == "TokenReview" and out["metadata"] == {"creationTimestamp": None}
    assert out["status"] == {"authenticated": True, "audiences": [API], "user": {
        "username": "kybern-admin", "groups": ["system:masters", "system:authenticated"]}}
    assert _review(cluster, admin, ["vault"]) == {"error": "invalid bearer token", "user": {}}
    p = cluster.kubectl("create", "-f", "-", check=False, input=json.dumps({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {}}))
    assert p.returncode == 1
    assert p.stderr.strip() == "Error from server (BadRequest): error when creating \"STDIN\": token is required " \
                               "for TokenReview in authentication"


def test_token_review_of_a_bound_pod_token_and_who_may_ask(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("create", "serviceaccount", "proxy", *ns)
    cluster.kubectl("apply", *ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder"},
        "spec": {"serviceAccountName": "proxy", "nodeName": "node-1", "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"]}]}}))
    pod_uid = cluster.kjson("get", "pod", "holder", *ns)["metadata"]["uid"]
    node_uid = cluster.kjson("get", "node", "node-1")["metadata"]["uid"]
    token = cluster.kubectl("create", "token", "proxy", *ns, "--bound-object-kind", "Pod",
                            "--bound-object-name", "holder").stdout.strip()

    # a service account may review tokens once bound to system:auth-delegator, as kube-rbac-proxy is
    review = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                         "spec": {"token": token}})
    p = cluster.kubectl("create", "--validate=false", "-o", "json", "-f", "-", "--token", token, input=review,
                        check=False)
    assert p.returncode == 1 and "cannot create resource \"tokenreviews\" in API group " \
                                 "\"authentication.k8s.io\" at the cluster scope" in p.stderr
    binding = f"{namespace}-delegator"
    cluster.kubectl("create", "clusterrolebinding", binding, "--clusterrole", "system:auth-delegator",
                    f"--serviceaccount={namespace}:proxy")
    try:
        st = cluster.wait_for(lambda: json.loads(cluster.kubectl(
            "create", "--validate=false", "-o", "json", "-f", "-", "--token", token, input=review).stdout)["status"],
            what="the binding to take effect")
    finally:
        cluster.kubectl("delete", "clusterrolebinding", binding, check=False)
    assert st["authenticated"] is True
    assert st["user"]["extra"] == {
        "authentication.kubernetes.io/credential-id": st["user"]["extra"]["authentication.kubernetes.io/credential-id"],
        "authentication.kubernetes.io/node-name": ["node-1"], "authentication.kubernetes.io/node-uid": [node_uid],
        "authentication.kubernetes.io/pod-name": ["holder"], "authentication.kubernetes.io/pod-uid": [pod_uid]}

    # the pod gone, its token is too
    cluster.kubectl("delete", "pod", "holder", *ns, "--grace-period=0", "--force")
    cluster.wait_for(lambda: "error" in _review(cluster, token), what="the token to die with its pod")
    assert _review(cluster, token) == {
        "error": "[invalid bearer token, service account token has been invalidated]", "user": {}}


def test_kubectl_get_componentstatuses(cluster):
    p = cluster.kubectl("get", "cs")
    assert p.stderr.strip() == "Warning: v1 ComponentStatus is deprecated in v1.19+"
    rows = [line.split() for line in p.stdout.splitlines()]
    assert rows == [["NAME", "STATUS", "MESSAGE", "ERROR"], ["scheduler", "Healthy", "ok"],
                    ["controller-manager", "Healthy", "ok"], ["etcd-0", "Healthy", "ok"]]
    core = client.CoreV1Api(cluster.api_client())
    assert [c.metadata.name for c in core.list_component_status().items] == ["scheduler", "controller-manager",
                                                                             "etcd-0"]
    cs = core.read_component_status("etcd-0")
    assert cs.metadata.name == "etcd-0"
    assert [(c.type, c.status, c.message, c.error) for c in cs.conditions] == [("Healthy", "True", "ok", None)]
    p = cluster.kubectl("get", "cs", "nothing", check=False)
    assert p.returncode == 1 and "Component not found: nothing" in p.stderr
    p = cluster.kubectl("delete", "cs", "etcd-0", check=False)
    assert p.returncode == 1 and "(MethodNotAllowed)" in p.stderr


def test_discovery_and_explain_know_both_kinds(cluster):
    rows = [line.split() for line in cluster.kubectl("api-resources", "-o", "wide").stdout.splitlines()]
    assert ["componentstatuses", "cs", "v1", "false", "ComponentStatus", "get,list"] in rows
    assert ["tokenreviews", "authentication.k8s.io/v1", "false", "TokenReview", "create"] in rows
    core = json.loads(cluster.kubectl("get", "--raw", "/api/v1").stdout)
    [cs] = [r for r in core["resources"] if r["name"] == "componentstatuses"]
    assert (cs["namespaced"], cs["verbs"], cs["shortNames"]) == (False, ["get", "list"], ["cs"])
    authn = json.loads(cluster.kubectl("get", "--raw", "/apis/authentication.k8s.io/v1").stdout)
    [tr] = [r for r in authn["resources"] if r["name"] == "tokenreviews"]
    assert (tr["namespaced"], tr["verbs"], tr["kind"]) == (False, ["create"], "TokenReview")
    out = cluster.kubectl("explain", "tokenreview.spec").stdout
    assert "GROUP:      authentication.k8s.io" in out and "audiences\t<[]string>" in out and "token\t<string>" in out
    assert "conditions\t<[]ComponentCondition>" in cluster.kubectl("explain", "componentstatus").stdout
