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


# -- client certificates through a CertificateSigningRequest (docs/certificates.md) ---------------------
def _key_and_csr(tmp_path, cn: str, org: str | None = None) -> tuple[str, str]:
    """What the task page does with openssl: a key and a CSR for CN=<cn> (PEM)."""
    import shutil
    import subprocess

    key, csr = tmp_path / f"{cn}.key", tmp_path / f"{cn}.csr"
    subj = f"/CN={cn}" + (f"/O={org}" if org else "")
    if shutil.which("openssl"):
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-new", "-key", str(key), "-out", str(csr), "-subj", subj], check=True,
                       capture_output=True)
        return key.read_text(), csr.read_text()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    k = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] + \
        ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else [])
    req = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(k, hashes.SHA256())
    return (k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode(),
            req.public_bytes(serialization.Encoding.PEM).decode())


def _csr_yaml(name: str, csr_pem: str, usages: str = "- client auth", extra: str = "  expirationSeconds: 86400\n",
              signer: str = "kubernetes.io/kube-apiserver-client") -> str:
    import base64

    return (f"apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\n"
            f"spec:\n  request: {base64.b64encode(csr_pem.encode()).decode()}\n  signerName: {signer}\n"
            f"{extra}  usages:\n  {usages}\n")


def _user_kubeconfig(cluster, tmp_path, name: str, cert_pem: str, key_pem: str) -> str:
    """The admin kubeconfig's cluster with a user holding the client certificate
    (`kubectl config set-credentials --client-key --client-certificate --embed-certs`)."""
    import base64

    import yaml

    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    cfg["users"] = [{"name": name, "user": {
        "client-certificate-data": base64.b64encode(cert_pem.encode()).decode(),
        "client-key-data": base64.b64encode(key_pem.encode()).decode()}}]
    cfg["contexts"] = [{"name": name, "context": {"cluster": cfg["clusters"][0]["name"], "user": name}}]
    cfg["current-context"] = name
    path = tmp_path / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_client_certificate_from_a_csr(cluster, namespace, tmp_path):
    """kubernetes.io "Issue a Certificate for a Kubernetes API Client Using A
    CertificateSigningRequest": CSR, approval, the issued certificate as myuser's
    credentials, forbidden until a Role is bound."""
    import base64

    name = f"myuser-{namespace}"
    key, csr = _key_and_csr(tmp_path, "myuser")
    cluster.kubectl("apply", "-f", "-", input=_csr_yaml(name, csr))
    rows = cluster.kubectl("get", "csr", name).stdout.splitlines()
    assert rows[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    assert rows[1].split()[2:] == ["kubernetes.io/kube-apiserver-client", "kybern-admin", "24h", "Pending"]
    assert cluster.kubectl("certificate", "approve", name).stdout.strip() == \
        f"certificatesigningrequest.certificates.k8s.io/{name} approved"
    cert_b64 = cluster.wait_for(
        lambda: cluster.kubectl("get", "csr", name, "-o", "jsonpath={.status.certificate}").stdout.strip(),
        what="the issued certificate")
    assert cluster.kubectl("get", "csr", name, "--no-headers").stdout.split()[-1] == "Approved,Issued"
    cond = cluster.kjson("get", "csr", name)["status"]["conditions"]
    assert [(c["type"], c["reason"], c["message"]) for c in cond] == [
        ("Approved", "KubectlApprove", "This CSR was approved by kubectl certificate approve.")]
    cert = base64.b64decode(cert_b64).decode()
    from cryptography import x509

    issued = x509.load_pem_x509_certificate(cert.encode())
    assert issued.subject.rfc4514_string() == "CN=myuser"
    assert (issued.not_valid_after_utc - issued.not_valid_before_utc).total_seconds() == 86400  # backdated 5 min

    kc = _user_kubeconfig(cluster, tmp_path, "myuser", cert, key)
    who = cluster.kubectl("--kubeconfig", kc, "auth", "whoami").stdout
    assert who.split("\n")[1].split() == ["Username", "myuser"]
    assert who.split("\n")[2].split() == ["Groups", "[system:authenticated]"]
    p = cluster.kubectl("--kubeconfig", kc, "get", "pods", "-n", namespace, check=False)
    assert p.returncode != 0
    assert p.stderr.strip() == ('Error from server (Forbidden): pods is forbidden: User "myuser" cannot list '
                                f'resource "pods" in API group "" in the namespace "{namespace}"')
    cluster.kubectl("create", "role", "developer", "--verb=create,get,list,update,delete", "--resource=pods",
                    "-n", namespace)
    cluster.kubectl("create", "rolebinding", "developer-binding-myuser", "--role=developer", "--user=myuser",
                    "-n", namespace)
    cluster.wait_for(lambda: cluster.kubectl("--kubeconfig", kc, "get", "pods", "-n", namespace,
                                             check=False).returncode == 0, what="myuser may list pods")
    assert cluster.kubectl("--kubeconfig", kc, "auth", "can-i", "delete", "pods", "-n", namespace).stdout.strip() \
        == "yes"
    # the official Python client authenticates with the same certificate
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(kc))
    assert api.list_namespaced_pod(namespace).items == []
    # spec.username is who asked, and stays so
    p = cluster.kubectl("patch", "csr", name, "--type=merge", "-p", '{"spec":{"username":"mallory"}}', check=False)
    assert cluster.kjson("get", "csr", name)["spec"]["username"] == "kybern-admin", p.stdout + p.stderr
    cluster.kubectl("delete", "csr", name)


def test_csr_deny_refusals_and_foreign_certificates(cluster, namespace, tmp_path):
    ns = namespace
    key, csr = _key_and_csr(tmp_path, "bob")
    cluster.kubectl("apply", "-f", "-", input=_csr_yaml(f"bob-{ns}", csr))
    assert cluster.kubectl("certificate", "deny", f"bob-{ns}").stdout.strip() == \
        f"certificatesigningrequest.certificates.k8s.io/bob-{ns} denied"
    assert cluster.kubectl("get", "csr", f"bob-{ns}", "--no-headers").stdout.split()[-1] == "Denied"
    p = cluster.kubectl("certificate", "approve", f"bob-{ns}", check=False)
    assert p.returncode != 0 and "is already Denied" in p.stderr
    # a bad request: the Status names every invalid field
    bad = ("apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: bad\nspec:\n"
           "  request: aGVsbG8K\n  signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 599\n"
           "  usages: [client auth, client auth]\n")
    p = cluster.kubectl("apply", "-f", "-", input=bad, check=False)
    assert p.stderr.strip() == (
        'The CertificateSigningRequest "bad" is invalid: \n'
        "* spec.request: Invalid value: []byte{0x68, 0x65, 0x6c, 0x6c, 0x6f, 0xa}: PEM block type must be "
        "CERTIFICATE REQUEST\n"
        '* spec.usages[1]: Duplicate value: "client auth"\n'
        "* spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds "
        "(10 minutes)")
    p = cluster.kubectl("apply", "-f", "-", input=_csr_yaml("nosigner", csr, signer='""'), check=False)
    assert "spec.signerName: Required value" in p.stderr
    # CertificateSubjectRestriction
    _, masters = _key_and_csr(tmp_path, "root", org="system:masters")
    p = cluster.kubectl("apply", "-f", "-", input=_csr_yaml(f"root-{ns}", masters), check=False)
    assert p.stderr.strip() == (
        f'Error from server (Forbidden): error when creating "STDIN": certificatesigningrequests.certificates.k8s.io '
        f'"root-{ns}" is forbidden: use of kubernetes.io/kube-apiserver-client signer with system:masters group is '
        "not allowed")
    # the signer refuses usages a client certificate may not have
    cluster.kubectl("apply", "-f", "-", input=_csr_yaml(f"srv-{ns}", csr, usages="- server auth"))
    cluster.kubectl("certificate", "approve", f"srv-{ns}")
    cluster.wait_for(lambda: cluster.kubectl("get", "csr", f"srv-{ns}", "--no-headers").stdout.split()[-1]
                     == "Approved,Failed", what="Failed")
    failed = [c for c in cluster.kjson("get", "csr", f"srv-{ns}")["status"]["conditions"] if c["type"] == "Failed"]
    assert (failed[0]["reason"], failed[0]["message"]) == ("SignerValidationFailure",
                                                           "invalid usage for client certificate: server auth")
    # approving takes `approve` on the signer, besides update on certificatesigningrequests/approval
    cluster.kubectl("apply", "-f", "-", input=_csr_yaml(f"carol-{ns}", csr))
    # /status may not approve
    p = cluster.kubectl("patch", "csr", f"carol-{ns}", "--subresource=status", "--type=merge", "-p",
                        '{"status":{"conditions":[{"type":"Approved","status":"True","reason":"R"}]}}', check=False)
    assert 'status.conditions: Forbidden: updates may not add a condition of type "Approved"' in p.stderr
    rules = ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: csr-approver-{ns}\n"
             "rules:\n- apiGroups: [certificates.k8s.io]\n  resources: [certificatesigningrequests]\n"
             "  verbs: [get, list]\n- apiGroups: [certificates.k8s.io]\n"
             "  resources: [certificatesigningrequests/approval]\n  verbs: [update]\n")
    cluster.kubectl("apply", "-f", "-", input=rules.format(ns=ns))
    cluster.kubectl("create", "clusterrolebinding", f"csr-approver-{ns}", f"--clusterrole=csr-approver-{ns}",
                    f"--user=approver-{ns}")
    as_ = f"--as=approver-{ns}"
    p = cluster.kubectl("certificate", "approve", f"carol-{ns}", as_, check=False)
    assert p.stderr.strip() == (
        f'Error from server (Forbidden): certificatesigningrequests.certificates.k8s.io "carol-{ns}" is forbidden: '
        'user not permitted to approve requests with signerName "kubernetes.io/kube-apiserver-client"')
    signers = ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: csr-signer-{ns}\n"
               "rules:\n- apiGroups: [certificates.k8s.io]\n  resources: [signers]\n"
               "  resourceNames: ['kubernetes.io/*']\n  verbs: [approve]\n")
    cluster.kubectl("apply", "-f", "-", input=signers.format(ns=ns))
    cluster.kubectl("create", "clusterrolebinding", f"csr-signer-{ns}", f"--clusterrole=csr-signer-{ns}",
                    f"--user=approver-{ns}")
    cluster.wait_for(lambda: cluster.kubectl("certificate", "approve", f"carol-{ns}", as_, check=False).returncode
                     == 0, what="approved by the approver")
    assert cluster.kubectl("get", "csr", f"bob-{ns}", "-o", "jsonpath={.status.certificate}").stdout == ""
    # upstream's bootstrap approver roles, one per well-known signer
    assert cluster.kjson("get", "clusterrole", "system:certificates.k8s.io:kube-apiserver-client-approver")[
        "rules"] == [{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
                      "resourceNames": ["kubernetes.io/kube-apiserver-client"], "verbs": ["approve"]}]
    # a client certificate from another CA does not get through TLS
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    k = ec.generate_private_key(ec.SECP256R1())
    subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")])
    now = dt.datetime.now(dt.timezone.utc)
    own = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj).public_key(k.public_key())
           .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(hours=1)).sign(k, hashes.SHA256()))
    kc = _user_kubeconfig(cluster, tmp_path, "forged", own.public_bytes(serialization.Encoding.PEM).decode(),
                          k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()).decode())
    p = cluster.kubectl("--kubeconfig", kc, "auth", "whoami", "--request-timeout=5s", check=False)
    assert p.returncode != 0 and "Username" not in p.stdout
    for n in ("bob", "srv", "carol"):
        cluster.kubectl("delete", "csr", f"{n}-{ns}")
    cluster.kubectl("delete", "clusterrolebinding", f"csr-approver-{ns}", f"csr-signer-{ns}")
    cluster.kubectl("delete", "clusterrole", f"csr-approver-{ns}", f"csr-signer-{ns}")
