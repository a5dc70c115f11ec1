"""RBAC authorization as on a kind/kubeadm cluster (--authorization-mode=Node,RBAC), with the
real kubectl: what a service account may do before and after a Role and RoleBinding, `kubectl
auth can-i` (with --as and --list), ClusterRole aggregation, escalation prevention and
impersonation (docs/rbac.md)."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.e2e


def _sa_token(cluster, ns: str, name: str) -> str:
    cluster.kubectl("create", "serviceaccount", name, "-n", ns)
    return cluster.kubectl("create", "token", name, "-n", ns).stdout.strip()


def test_service_account_is_forbidden_until_a_role_is_bound(cluster, namespace):
    ns = ["-n", namespace]
    token = _sa_token(cluster, namespace, "foo")
    user = f"system:serviceaccount:{namespace}:foo"
    p = cluster.kubectl("get", "pods", *ns, f"--token={token}", check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == (f'Error from server (Forbidden): pods is forbidden: User "{user}" cannot list resource '
                                f'"pods" in API group "" in the namespace "{namespace}"')
    p = cluster.kubectl("get", "pod", "web", *ns, f"--token={token}", check=False)
    assert p.stderr.strip() == (f'Error from server (Forbidden): pods "web" is forbidden: User "{user}" cannot get '
                                f'resource "pods" in API group "" in the namespace "{namespace}"')
    p = cluster.kubectl("get", "nodes", f"--token={token}", check=False)
    assert p.stderr.strip() == (f'Error from server (Forbidden): nodes is forbidden: User "{user}" cannot list resource '
                                '"nodes" in API group "" at the cluster scope')
    p = cluster.kubectl("get", "--raw", "/metrics", f"--token={token}", check=False)
    assert p.stderr.strip() == (f'Error from server (Forbidden): forbidden: User "{user}" cannot get path "/metrics"')
    # the Status as kube-apiserver sends it
    p = cluster.kubectl("get", "pods", *ns, f"--token={token}", "-v=9", check=False)
    body = next(line for line in p.stderr.splitlines() if '"kind":"Status"' in line)
    status = json.loads(body[body.index("{"):])
    assert status["reason"] == "Forbidden" and status["code"] == 403 and status["details"] == {"kind": "pods"}

    cluster.kubectl("create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods,pods/log", *ns)
    cluster.kubectl("create", "rolebinding", "foo-reads-pods", "--role=pod-reader",
                    f"--serviceaccount={namespace}:foo", *ns)
    assert cluster.kubectl("get", "pods", *ns, f"--token={token}").returncode == 0
    p = cluster.kubectl("delete", "pod", "web", *ns, f"--token={token}", check=False)
    assert p.stderr.strip() == (f'Error from server (Forbidden): pods "web" is forbidden: User "{user}" cannot delete '
                                f'resource "pods" in API group "" in the namespace "{namespace}"')
    # discovery and the self reviews every authenticated user has (system:discovery, system:basic-user)
    assert cluster.kubectl("api-versions", f"--token={token}").returncode == 0
    assert cluster.kubectl("auth", "can-i", "get", "pods", "--subresource=log", *ns,
                           f"--token={token}").stdout.strip() == "yes"


def test_can_i_as_another_subject(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("create", "serviceaccount", "bot", *ns)
    who = f"--as=system:serviceaccount:{namespace}:bot"

    def can_i(*args: str) -> str:
        return cluster.kubectl("auth", "can-i", *args, check=False).stdout.strip()

    assert can_i("list", "pods", *ns, who) == "no"
    cluster.kubectl("create", "rolebinding", "bot-view", "--clusterrole=view", f"--serviceaccount={namespace}:bot", *ns)
    assert can_i("list", "pods", *ns, who) == "yes"
    assert can_i("list", "pods", "-n", "kube-system", who) == "no"
    assert can_i("list", "secrets", *ns, who) == "no"  # view does not read secrets
    assert can_i("create", "deployments", *ns, who) == "no"
    out = cluster.kubectl("auth", "can-i", "--list", *ns, who).stdout
    lines = [line.split() for line in out.splitlines()]
    assert ["pods", "[]", "[]", "[get", "list", "watch]"] in lines
    assert ["selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"] in lines
    assert ["deployments.apps", "[]", "[]", "[get", "list", "watch]"] in lines
    # the admin (system:masters) may do anything; a user with no bindings nothing
    assert can_i("*", "*") == "yes"
    assert can_i("get", "pods", *ns, "--as=jane") == "no"


def test_subject_access_review(cluster, namespace):
    cluster.kubectl("create", "rolebinding", "jane-edit", "--clusterrole=edit", "--user=jane", "-n", namespace)

    def review(verb: str, resource: str) -> dict:
        sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
            "user": "jane", "resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace}}}
        return json.loads(cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(sar)).stdout)["status"]

    assert review("create", "pods") == {"allowed": True, "reason": f'RBAC: allowed by RoleBinding "jane-edit/{namespace}" '
                                                                  'of ClusterRole "edit" to User "jane"'}
    assert review("create", "roles") == {"allowed": False}


def test_clusterrole_aggregation_by_labels(cluster):
    name = f"widgets-{os.getpid()}"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"apiGroups": [name + ".example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}]}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(role))
    try:
        def aggregated(into: str) -> bool:
            rules = cluster.kjson("get", "clusterrole", into).get("rules") or []
            return any(r.get("apiGroups") == [name + ".example.com"] for r in rules)
        # view aggregates into edit, edit into admin
        cluster.wait_for(lambda: all(aggregated(r) for r in ("view", "edit", "admin")), timeout=10,
                         what="the widgets rule aggregated into view, edit and admin")
        boot = cluster.kubectl("get", "clusterroles", "-l", "kubernetes.io/bootstrapping=rbac-defaults",
                               "-o", "name").stdout.split()
        for r in ("cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
                  "system:public-info-viewer", "system:node", "system:kube-scheduler"):
            assert f"clusterrole.rbac.authorization.k8s.io/{r}" in boot
    finally:
        cluster.kubectl("delete", "clusterrole", name)
    cluster.wait_for(lambda: not aggregated("view"), timeout=10, what="the rule gone from view")


def test_escalation_is_refused(cluster, namespace):
    ns = ["-n", namespace]
    token = _sa_token(cluster, namespace, "lead")
    user = f"system:serviceaccount:{namespace}:lead"
    groups = f'["system:serviceaccounts" "system:serviceaccounts:{namespace}" "system:authenticated"]'
    cluster.kubectl("create", "rolebinding", "lead-admin", "--clusterrole=admin",
                    f"--serviceaccount={namespace}:lead", *ns)
    tok = f"--token={token}"
    # rules the user holds: fine
    assert cluster.kubectl("create", "role", "reader", "--verb=get", "--resource=pods", *ns, tok).returncode == 0
    p = cluster.kubectl("create", "role", "nodes", "--verb=get,list", "--resource=nodes,pods", *ns, tok, check=False)
    assert p.stderr.strip() == (
        f'Error from server (Forbidden): roles.rbac.authorization.k8s.io "nodes" is forbidden: user "{user}" '
        f'(groups={groups}) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["nodes"], Verbs:["get" "list"]}')
    p = cluster.kubectl("create", "rolebinding", "all", "--clusterrole=cluster-admin", "--user=bob", *ns, tok,
                        check=False)
    assert p.stderr.strip() == (
        f'error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io "all" is forbidden: user '
        f'"{user}" (groups={groups}) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}\n{NonResourceURLs:["*"], Verbs:["*"]}')
    # binding a role whose rules the user holds is allowed; `bind` on a role allows binding it regardless
    assert cluster.kubectl("create", "rolebinding", "bob-views", "--clusterrole=view", "--user=bob", *ns,
                           tok).returncode == 0
    cluster.kubectl("create", "role", "may-bind", "--verb=bind", "--resource=clusterroles",
                    "--resource-name=cluster-admin", *ns)
    cluster.kubectl("create", "rolebinding", "lead-may-bind", "--role=may-bind", f"--serviceaccount={namespace}:lead",
                    *ns)
    assert cluster.kubectl("create", "rolebinding", "all", "--clusterrole=cluster-admin", "--user=bob", *ns,
                           tok).returncode == 0
    # and `escalate` allows writing roles with any rules
    cluster.kubectl("create", "role", "may-escalate", "--verb=escalate", "--resource=roles", *ns)
    cluster.kubectl("create", "rolebinding", "lead-may-escalate", "--role=may-escalate",
                    f"--serviceaccount={namespace}:lead", *ns)
    assert cluster.kubectl("create", "role", "nodes", "--verb=get,list", "--resource=nodes", *ns, tok).returncode == 0


def test_impersonation_needs_the_impersonate_verb(cluster, namespace):
    ns = ["-n", namespace]
    token = _sa_token(cluster, namespace, "imp")
    user = f"system:serviceaccount:{namespace}:imp"
    p = cluster.kubectl("get", "pods", *ns, f"--token={token}", "--as=jane", check=False)
    assert p.stderr.strip() == (f'Error from server (Forbidden): users "jane" is forbidden: User "{user}" cannot '
                                'impersonate resource "users" in API group "" at the cluster scope')
    p = cluster.kubectl("get", "pods", *ns, f"--token={token}", "--as=jane", "--as-group=devs", check=False)
    assert 'users "jane" is forbidden' in p.stderr
    cluster.kubectl("create", "clusterrole", f"impersonate-jane-{namespace}", "--verb=impersonate",
                    "--resource=users", "--resource-name=jane")
    try:
        cluster.kubectl("create", "clusterrolebinding", f"imp-jane-{namespace}",
                        f"--clusterrole=impersonate-jane-{namespace}", f"--serviceaccount={namespace}:imp")
        try:
            # now the request runs as jane, who may not list pods
            p = cluster.kubectl("get", "pods", *ns, f"--token={token}", "--as=jane", check=False)
            assert p.stderr.strip() == ('Error from server (Forbidden): pods is forbidden: User "jane" cannot list '
                                        f'resource "pods" in API group "" in the namespace "{namespace}"')
            who = json.loads(cluster.kubectl("auth", "whoami", f"--token={token}", "--as=jane", "-o", "json").stdout)
            assert who["status"]["userInfo"] == {"username": "jane", "groups": ["system:authenticated"]}
            p = cluster.kubectl("get", "pods", *ns, f"--token={token}", "--as=bob", check=False)
            assert 'users "bob" is forbidden' in p.stderr
            # impersonating a group needs its own grant
            p = cluster.kubectl("get", "pods", *ns, f"--token={token}", "--as=jane", "--as-group=devs", check=False)
            assert p.stderr.strip() == (f'Error from server (Forbidden): groups "devs" is forbidden: User "{user}" '
                                        'cannot impersonate resource "groups" in API group "" at the cluster scope')
        finally:
            cluster.kubectl("delete", "clusterrolebinding", f"imp-jane-{namespace}")
    finally:
        cluster.kubectl("delete", "clusterrole", f"impersonate-jane-{namespace}")


def test_admission_policy_authorizer_asks_rbac(cluster, namespace):
    """A ValidatingAdmissionPolicy's CEL `authorizer` answers from RBAC for the request's user."""
    name = f"needs-secrets-{namespace}"[:63]
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": name}, "spec": {
                  "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                          "operations": ["CREATE"], "resources": ["configmaps"]}]},
                  "validations": [{"expression": "authorizer.resource('secrets').namespace(request.namespace)"
                                                 ".check('get').allowed()",
                                   "message": "only who may read secrets may create config maps"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": name}, "spec": {
                   "policyName": name, "validationActions": ["Deny"],
                   "matchResources": {"namespaceSelector": {"matchLabels": {
                       "kubernetes.io/metadata.name": namespace}}}}}
    token = _sa_token(cluster, namespace, "cm-writer")
    cluster.kubectl("create", "role", "cm-create", "--verb=create", "--resource=configmaps", "-n", namespace)
    cluster.kubectl("create", "rolebinding", "cm-create", "--role=cm-create",
                    f"--serviceaccount={namespace}:cm-writer", "-n", namespace)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(policy))
    cluster.kubectl("apply", "-f", "-", input=json.dumps(binding))
    try:
        def sa_create(n: str):
            return cluster.kubectl("create", "configmap", n, "-n", namespace, f"--token={token}", "--dry-run=server",
                                   check=False)
        cluster.wait_for(lambda: sa_create("probe").returncode != 0, timeout=15, what="the policy enforced")
        assert "only who may read secrets may create config maps" in sa_create("one").stderr
        # the admin (system:masters) may read secrets: admitted
        assert cluster.kubectl("create", "configmap", "two", "-n", namespace, "--dry-run=server").returncode == 0
        cluster.kubectl("create", "role", "secret-reader", "--verb=get", "--resource=secrets", "-n", namespace)
        cluster.kubectl("create", "rolebinding", "secret-reader", "--role=secret-reader",
                        f"--serviceaccount={namespace}:cm-writer", "-n", namespace)
        cluster.wait_for(lambda: sa_create("three").returncode == 0, timeout=10, what="admitted once it may read")
    finally:
        cluster.kubectl("delete", "validatingadmissionpolicybinding", name)
        cluster.kubectl("delete", "validatingadmissionpolicy", name)
