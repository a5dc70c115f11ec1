"""Dynamic admission control end to end: kubectl applies Validating- and
MutatingWebhookConfigurations naming a real HTTPS webhook this test starts
(tests/e2e/admission_webhook_server.py, its CA in caBundle), and the apiserver
calls it as kube-apiserver does: denials and warnings as kubectl prints them,
JSONPatch mutations in the stored object, failurePolicy Fail and Ignore with the
webhook down, namespace and object selectors, dry run, a service clientConfig.

Every configuration here selects only its test's namespace, so the other tests
sharing the cluster never reach these webhooks."""

from __future__ import annotations

import base64
import json
import socket

import pytest
from admission_webhook_server import WebhookServer


@pytest.fixture(scope="module")
def webhook() -> WebhookServer:
    s = WebhookServer(["127.0.0.1", "localhost"])
    yield s
    s.stop()


def config(kind: str, name: str, hooks: list[str]) -> str:
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: {kind}
metadata: {{name: {name}}}
webhooks:
""" + "".join(hooks)


def hook(name: str, client_config: str, ns: str, *, ops: str = "[CREATE, UPDATE, DELETE]", extra: str = "",
         resources: str = "[pods]") -> str:
    return f"""
- name: {name}
  clientConfig: {client_config}
  rules: [{{apiGroups: [""], apiVersions: [v1], operations: {ops}, resources: {resources}}}]
  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
  sideEffects: None
  admissionReviewVersions: [v1]
{extra}"""


def url_config(server: WebhookServer, path: str) -> str:
    return f'{{url: "{server.url(path)}", caBundle: {server.ca_bundle}}}'


def wait_called(cluster, server: WebhookServer, ns: str, path: str) -> None:
    """Configurations reach the apiserver's cache through its watch, as upstream's
    informer: wait until a dry-run create reaches the webhook."""
    def called() -> bool:
        before = len(server.requests_for(path))
        cluster.kubectl("run", "probe", "-n", ns, "--image=busybox", "--dry-run=server", check=False)
        return len(server.requests_for(path)) > before
    cluster.wait_for(called, timeout=15, what=f"the webhook {path} to be called")


def run(cluster, ns: str, name: str, *extra: str, check: bool = False):
    return cluster.kubectl("run", name, "-n", ns, "--image=busybox", *extra, "--", "sleep", "3600", check=check)


def test_configuration_api(cluster, webhook):
    names = "validatingwebhookconfigurations" in cluster.kubectl("api-resources", "--api-group",
                                                                 "admissionregistration.k8s.io").stdout
    assert names
    bad = config("ValidatingWebhookConfiguration", "e2e-invalid", ["""
- name: short
  clientConfig: {url: "http://example.com/x?y=1"}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE, BOGUS], resources: ["*", pods]}]
  timeoutSeconds: 31
- name: a.b.c
  clientConfig: {service: {namespace: default, name: svc, path: "/ok"}}
  sideEffects: Some
  admissionReviewVersions: [v3]
"""])
    p = cluster.kubectl("apply", "-f", "-", input=bad, check=False)
    assert p.returncode == 1
    assert 'The ValidatingWebhookConfiguration "e2e-invalid" is invalid:' in p.stderr
    for line in (
        ('* webhooks[0].name: Invalid value: "short": should be a domain with at least three segments separated '
        "by dots"),
        ('* webhooks[0].rules[0].operations[1]: Unsupported value: "BOGUS": supported values: "*", "CONNECT", '
        '"CREATE", "DELETE", "UPDATE"'),
        ('* webhooks[0].rules[0].resources: Invalid value: []string{"*", "pods"}: if \'*\' is present, must not '
        "specify other resources without subresources"),
        "* webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
        "* webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
        "* webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme",
        '* webhooks[0].clientConfig.url: Invalid value: "y=1": query parameters are not permitted in the URL',
        "* webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
        '* webhooks[1].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun"',
        ('* webhooks[1].admissionReviewVersions: Invalid value: []string{"v3"}: must include at least one of v1, '
        "v1beta1"),
    ):
        assert line in p.stderr, (line, p.stderr)

    # caBundle is a []byte: bad base64 is the Go decoder's 400
    p = cluster.kubectl("apply", "-f", "-", check=False, input=config("ValidatingWebhookConfiguration", "e2e-ca", [
        hook("ca.kybern.test", '{url: "https://127.0.0.1:1/x", caBundle: "YW=j"}', "no-such-namespace")]))
    assert p.stderr.strip() == ('Error from server (BadRequest): error when creating "STDIN": '
                                'ValidatingWebhookConfiguration in version "v1" cannot be handled as a '
                                "ValidatingWebhookConfiguration: illegal base64 data at input byte 2")

    good = config("MutatingWebhookConfiguration", "e2e-defaults", [
        hook("one.kybern.test", url_config(webhook, "/nothing"), "no-such-namespace"),
        hook("two.kybern.test", "{service: {namespace: default, name: svc}}", "no-such-namespace"),
    ])
    cluster.kubectl("apply", "-f", "-", input=good)
    try:
        out = cluster.kubectl("get", "mutatingwebhookconfigurations", "e2e-defaults").stdout.splitlines()
        assert out[0].split() == ["NAME", "WEBHOOKS", "AGE"]
        assert out[1].split()[:2] == ["e2e-defaults", "2"]
        obj = cluster.kjson("get", "mutatingwebhookconfiguration", "e2e-defaults")
        h0, h1 = obj["webhooks"]
        assert (h0["failurePolicy"], h0["matchPolicy"], h0["timeoutSeconds"], h0["reinvocationPolicy"],
                h0["objectSelector"], h0["rules"][0]["scope"]) == ("Fail", "Equivalent", 10, "Never", {}, "*")
        assert h1["clientConfig"]["service"]["port"] == 443
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", "e2e-defaults", check=False)


def test_validating_webhook_denies_and_warns(cluster, namespace, webhook):
    name = f"e2e-validate-{namespace}"
    cluster.kubectl("apply", "-f", "-", input=config("ValidatingWebhookConfiguration", name, [
        hook("validate.kybern.test", url_config(webhook, "/validate"), namespace)]))
    try:
        wait_called(cluster, webhook, namespace, "/validate")
        p = run(cluster, namespace, "bad-pod")
        assert p.returncode == 1
        assert p.stderr.strip() == ('Error from server (Forbidden): admission webhook "validate.kybern.test" '
                                    "denied the request: bad-pod is not welcome here")
        p = run(cluster, namespace, "warn-pod", check=True)
        assert "Warning: warn-pod looks suspicious" in p.stderr
        assert cluster.kjson("get", "pod", "warn-pod", "-n", namespace)["metadata"]["name"] == "warn-pod"

        req = webhook.requests_for("/validate")[-1]
        assert req["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
        assert req["resource"] == {"group": "", "version": "v1", "resource": "pods"}
        assert req["requestKind"] == req["kind"] and req["requestResource"] == req["resource"]
        assert (req["name"], req["namespace"], req["operation"], req["dryRun"]) == \
            ("warn-pod", namespace, "CREATE", False)
        assert req["object"]["spec"]["containers"][0]["image"] == "busybox"
        assert req["oldObject"] is None
        assert req["options"]["kind"] == "CreateOptions" and req["userInfo"]["username"]
        assert webhook.reviews[-1]["query"] == "timeout=10s"

        metrics = cluster.kubectl("get", "--raw", "/metrics").stdout
        assert 'apiserver_admission_webhook_rejection_count{error_type="no_error",name="validate.kybern.test",' \
            'operation="CREATE",rejection_code="403",type="validating"}' in metrics
        assert 'apiserver_admission_webhook_request_total{code="200",name="validate.kybern.test",' \
            'operation="CREATE",rejected="false",type="validating"}' in metrics
        assert 'apiserver_admission_webhook_admission_duration_seconds_count{name="validate.kybern.test",' \
            'operation="CREATE",rejected="true",type="validating"}' in metrics

        cluster.kubectl("delete", "pod", "warn-pod", "-n", namespace, "--wait=false")
        deletes = [r for r in webhook.requests_for("/validate") if r["operation"] == "DELETE"]
        assert deletes and deletes[-1]["object"] is None and deletes[-1]["oldObject"]["metadata"]["name"] == \
            "warn-pod"
        assert deletes[-1]["options"]["kind"] == "DeleteOptions"

        # another namespace is not selected: the same name is allowed there
        other = f"{namespace}-other"
        cluster.kubectl("create", "namespace", other)
        try:
            run(cluster, other, "bad-pod", check=True)
        finally:
            cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, check=False)


def test_mutating_webhook_patches_before_validation(cluster, namespace, webhook):
    mname, vname = f"e2e-mutate-{namespace}", f"e2e-check-{namespace}"
    cluster.kubectl("apply", "-f", "-", input=config("MutatingWebhookConfiguration", mname, [
        hook("mutate.kybern.test", url_config(webhook, "/mutate"), namespace, ops="[CREATE, UPDATE]")]))
    cluster.kubectl("apply", "-f", "-", input=config("ValidatingWebhookConfiguration", vname, [
        hook("check.kybern.test", url_config(webhook, "/validate"), namespace, ops="[CREATE]")]))
    try:
        wait_called(cluster, webhook, namespace, "/mutate")
        wait_called(cluster, webhook, namespace, "/validate")
        run(cluster, namespace, "mutant", check=True)
        pod = cluster.kjson("get", "pod", "mutant", "-n", namespace)
        assert pod["metadata"]["labels"]["mutated"] == "yes"
        assert pod["metadata"]["annotations"]["webhook/seen"] == "CREATE"
        # the validating webhook saw the mutated object
        seen = [r for r in webhook.requests_for("/validate") if r.get("name") == "mutant"]
        assert seen and seen[-1]["object"]["metadata"]["labels"]["mutated"] == "yes"
        cluster.kubectl("label", "pod", "mutant", "-n", namespace, "extra=1")
        pod = cluster.kjson("get", "pod", "mutant", "-n", namespace)
        assert pod["metadata"]["annotations"]["webhook/seen"] == "UPDATE"
        assert pod["metadata"]["labels"]["extra"] == "1"
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", mname, check=False)
        cluster.kubectl("delete", "validatingwebhookconfiguration", vname, check=False)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_failure_policy_with_the_webhook_down(cluster, namespace, webhook):
    port = _closed_port()
    name = f"e2e-down-{namespace}"
    cluster.kubectl("apply", "-f", "-", input=config("ValidatingWebhookConfiguration", name, [
        hook("down.kybern.test", f'{{url: "https://127.0.0.1:{port}/validate", caBundle: {webhook.ca_bundle}}}',
             namespace)]))
    try:
        want = ('Error from server (InternalError): Internal error occurred: failed calling webhook '
                f'"down.kybern.test": failed to call webhook: Post "https://127.0.0.1:{port}/validate?timeout=10s": '
                f"dial tcp 127.0.0.1:{port}: connect: connection refused")
        cluster.wait_for(lambda: run(cluster, namespace, "p1").stderr.strip() == want, timeout=15,
                         what="failurePolicy Fail to refuse the pod")
        cluster.kubectl("patch", "validatingwebhookconfiguration", name, "--type=json",
                        "-p", '[{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]')
        cluster.wait_for(lambda: run(cluster, namespace, "p2").returncode == 0, timeout=15,
                         what="failurePolicy Ignore to let the pod through")
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, check=False)


def test_untrusted_certificate_and_timeout(cluster, namespace, webhook):
    other_ca = WebhookServer(["127.0.0.1"])  # a CA the webhook's certificate is not from
    other_ca.stop()
    name = f"e2e-tls-{namespace}"
    cluster.kubectl("apply", "-f", "-", input=config("ValidatingWebhookConfiguration", name, [
        hook("tls.kybern.test", f'{{url: "{webhook.url("/validate")}", caBundle: {other_ca.ca_bundle}}}',
             namespace)]))
    try:
        want = ('Internal error occurred: failed calling webhook "tls.kybern.test": failed to call webhook: '
                f'Post "{webhook.url("/validate")}?timeout=10s": tls: failed to verify certificate: x509: '
                "certificate signed by unknown authority")
        cluster.wait_for(lambda: want in run(cluster, namespace, "p1").stderr, timeout=15,
                         what="an untrusted certificate to fail the call")
        cluster.kubectl("apply", "-f", "-", input=config("ValidatingWebhookConfiguration", name, [
            hook("tls.kybern.test", url_config(webhook, "/slow"), namespace, extra="  timeoutSeconds: 1\n")]))
        want = ('Internal error occurred: failed calling webhook "tls.kybern.test": failed to call webhook: '
                f'Post "{webhook.url("/slow")}?timeout=1s": context deadline exceeded')
        cluster.wait_for(lambda: want in run(cluster, namespace, "p2").stderr, timeout=20,
                         what="a slow webhook to time out")
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, check=False)


def test_dry_run_and_object_selector(cluster, namespace, webhook):
    name = f"e2e-dry-{namespace}"
    cluster.kubectl("apply", "-f", "-", input=config("ValidatingWebhookConfiguration", name, [
        hook("dry.kybern.test", url_config(webhook, "/validate"), namespace,
             extra="  objectSelector: {matchLabels: {checked: 'yes'}}\n")]))
    try:
        want = 'admission webhook "dry.kybern.test" denied the request: bad-dry is not welcome here'
        cluster.wait_for(lambda: want in run(cluster, namespace, "bad-dry", "-l", "checked=yes",
                                             "--dry-run=server").stderr,
                         timeout=15, what="a dry-run create to be denied")
        req = webhook.requests_for("/validate")[-1]
        assert req["dryRun"] is True and req["options"]["dryRun"] == ["All"]
        assert run(cluster, namespace, "ok-dry", "-l", "checked=yes", "--dry-run=server").returncode == 0
        assert cluster.kubectl("get", "pod", "ok-dry", "-n", namespace, check=False).returncode == 1
        # not selected by the object selector: never sent
        before = len(webhook.reviews)
        run(cluster, namespace, "bad-unlabelled", check=True)
        assert len(webhook.reviews) == before
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, check=False)


def test_service_client_config(cluster, namespace):
    server = WebhookServer([f"webhook.{namespace}.svc"])  # verified as the service's DNS name
    name = f"e2e-svc-{namespace}"
    svc = f"""
apiVersion: v1
kind: Service
metadata: {{name: webhook, namespace: {namespace}}}
spec:
  ports: [{{name: https, port: 443, targetPort: {server.port}}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: webhook, namespace: {namespace}}}
subsets:
- addresses: [{{ip: 127.0.0.1}}]
  ports: [{{name: https, port: {server.port}}}]
"""
    try:
        cluster.kubectl("apply", "-f", "-", input=svc)
        cluster.kubectl("apply", "-f", "-", input=config("ValidatingWebhookConfiguration", name, [
            hook("svc.kybern.test", f"{{service: {{namespace: {namespace}, name: webhook, path: /validate}}, "
                                    f"caBundle: {server.ca_bundle}}}", namespace)]))
        want = 'admission webhook "svc.kybern.test" denied the request: bad-svc is not welcome here'
        cluster.wait_for(lambda: want in run(cluster, namespace, "bad-svc").stderr, timeout=15,
                         what="the service's webhook to deny")
        run(cluster, namespace, "good-svc", check=True)
        assert {r["request"]["name"] for r in server.reviews} >= {"bad-svc", "good-svc"}
        # a service that does not exist, in upstream's words
        cluster.kubectl("apply", "-f", "-", input=config("ValidatingWebhookConfiguration", name, [
            hook("svc.kybern.test", f"{{service: {{namespace: {namespace}, name: missing, path: /validate}}, "
                                    f"caBundle: {server.ca_bundle}}}", namespace)]))
        want = ('Internal error occurred: failed calling webhook "svc.kybern.test": failed to call webhook: '
                f'Post "https://missing.{namespace}.svc:443/validate?timeout=10s": service "missing" not found')
        cluster.wait_for(lambda: want in run(cluster, namespace, "any-svc").stderr, timeout=15,
                         what="a missing service to fail the call")
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, check=False)
        server.stop()


def test_webhook_configuration_printed_as_json_by_the_client(cluster):
    """The kubernetes Python client reads the configurations as its own models."""
    from kubernetes import client

    api = client.AdmissionregistrationV1Api(cluster.api_client())
    body = json.loads(json.dumps({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "e2e-client"},
        "webhooks": [{"name": "client.kybern.test", "clientConfig": {"url": "https://127.0.0.1:1/x"},
                      "rules": [{"apiGroups": ["nothing.example.com"], "apiVersions": ["*"],
                                 "operations": ["*"], "resources": ["*"]}],
                      "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}))
    api.create_validating_webhook_configuration(body)
    try:
        got = api.read_validating_webhook_configuration("e2e-client")
        assert got.webhooks[0].failure_policy == "Fail" and got.webhooks[0].timeout_seconds == 10
        assert "e2e-client" in [c.metadata.name for c in api.list_validating_webhook_configuration().items]
    finally:
        api.delete_validating_webhook_configuration("e2e-client")


def test_connect_exec(cluster, namespace, webhook):
    """CONNECT: `kubectl exec` goes through the webhooks, the PodExecOptions as the object."""
    cluster.kubectl("run", "bad-exec", "-n", namespace, "--image=demo:v1", "--", "sleep", "300")
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/bad-exec", "--timeout=60s")
    assert cluster.kubectl("exec", "-n", namespace, "bad-exec", "--", "echo", "hi").stdout.strip() == "hi"
    name = f"e2e-exec-{namespace}"
    cluster.kubectl("apply", "-f", "-", input=config("ValidatingWebhookConfiguration", name, [
        hook("exec.kybern.test", url_config(webhook, "/validate"), namespace, ops="[CONNECT]",
             resources="[pods/exec]")]))
    try:
        want = ('Error from server (Forbidden): admission webhook "exec.kybern.test" denied the request: '
                "bad-exec is not welcome here")
        cluster.wait_for(lambda: want in cluster.kubectl("exec", "-n", namespace, "bad-exec", "--", "echo", "hi",
                                                         check=False).stderr, timeout=15, what="exec to be denied")
        req = webhook.requests_for("/validate")[-1]
        assert (req["operation"], req["subResource"], req["name"]) == ("CONNECT", "exec", "bad-exec")
        assert req["kind"] == {"group": "", "version": "v1", "kind": "PodExecOptions"}
        assert req["object"]["command"] == ["echo", "hi"] and req["options"] is None
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, check=False)


@pytest.mark.parametrize("policy", ["Never", "IfNeeded"])
def test_reinvocation(cluster, namespace, webhook, policy):
    """A webhook called before another one changed the object is called again with
    reinvocationPolicy IfNeeded, not with Never (configurations run by name)."""
    first, second = f"e2e-a-{namespace}", f"e2e-b-{namespace}"
    cluster.kubectl("apply", "-f", "-", input=config("MutatingWebhookConfiguration", first, [
        hook("stamp.kybern.test", url_config(webhook, "/stamp"), namespace, ops="[CREATE]",
             extra=f"  reinvocationPolicy: {policy}\n")]))
    cluster.kubectl("apply", "-f", "-", input=config("MutatingWebhookConfiguration", second, [
        hook("mutate.kybern.test", url_config(webhook, "/mutate"), namespace, ops="[CREATE]")]))
    try:
        wait_called(cluster, webhook, namespace, "/stamp")
        wait_called(cluster, webhook, namespace, "/mutate")
        run(cluster, namespace, "stamped", check=True)
        labels = cluster.kjson("get", "pod", "stamped", "-n", namespace)["metadata"]["annotations"]["webhook/labels"]
        assert labels == ("mutated,run" if policy == "IfNeeded" else "run")
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", first, second, check=False)


def test_namespace_selector_on_namespaces_and_cluster_scoped(cluster, namespace, webhook):
    """A Namespace being created matches on its own labels; a cluster-scoped object
    matches whatever the namespaceSelector says (upstream's MatchNamespaceSelector)."""
    name = f"e2e-ns-{namespace}"
    mark = namespace[-20:]
    sel = f"  namespaceSelector: {{matchLabels: {{e2e-webhook: '{mark}'}}}}\n"
    cfg = config("ValidatingWebhookConfiguration", name, [f"""
- name: ns.kybern.test
  clientConfig: {url_config(webhook, "/validate")}
  rules: [{{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [namespaces]}},
          {{apiGroups: [scheduling.k8s.io], apiVersions: [v1], operations: [CREATE], resources: [priorityclasses]}}]
{sel}  sideEffects: None
  admissionReviewVersions: [v1]
"""])
    cluster.kubectl("apply", "-f", "-", input=cfg)
    bad_ns = f"bad-{namespace}"[:63].rstrip("-")
    try:
        want = f'admission webhook "ns.kybern.test" denied the request: {bad_ns} is not welcome here'
        cluster.wait_for(lambda: want in cluster.kubectl("apply", "-f", "-", check=False, input=f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {bad_ns}, labels: {{e2e-webhook: '{mark}'}}}}
""").stderr, timeout=15, what="a labelled namespace to be denied")
        # the same name without the label is not selected
        cluster.kubectl("create", "namespace", bad_ns)
        cluster.kubectl("delete", "namespace", bad_ns, "--wait=false")
        p = cluster.kubectl("create", "priorityclass", f"bad-pc-{mark}", "--value=10", check=False)
        assert f'admission webhook "ns.kybern.test" denied the request: bad-pc-{mark} is not welcome here' in \
            p.stderr
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, check=False)


@pytest.mark.parametrize("policy", ["Exact", "Equivalent"])
def test_match_policy(cluster, namespace, webhook, policy):
    """`kubectl autoscale` writes autoscaling/v1; a rule for autoscaling/v2 sees it only
    with matchPolicy Equivalent, converted to v2 (requestKind v1), its patch applied."""
    name = f"e2e-hpa-{namespace}"
    cluster.kubectl("apply", "-f", "-", input=config("MutatingWebhookConfiguration", name, [
        hook("hpa.kybern.test", url_config(webhook, "/mutate"), namespace, ops="[CREATE]",
             resources="[horizontalpodautoscalers]", extra=f"  matchPolicy: {policy}\n").replace(
            '{apiGroups: [""], apiVersions: [v1]', "{apiGroups: [autoscaling], apiVersions: [v2]"),
        # a pod webhook in the same configuration shows when the apiserver has it
        hook("probe.kybern.test", url_config(webhook, "/probe"), namespace, ops="[CREATE]")]))
    try:
        wait_called(cluster, webhook, namespace, "/probe")
        cluster.kubectl("create", "deployment", "web", "-n", namespace, "--image=demo:v1")
        before = len(webhook.requests_for("/mutate"))
        cluster.kubectl("autoscale", "deployment", "web", "-n", namespace, "--max=3", "--cpu-percent=50")
        hpa = cluster.kjson("get", "hpa", "web", "-n", namespace)
        sent = webhook.requests_for("/mutate")[before:]
        if policy == "Exact":
            assert not sent and "mutated" not in (hpa["metadata"].get("labels") or {})
            return
        assert hpa["metadata"]["labels"]["mutated"] == "yes"
        req = sent[-1]
        assert req["kind"] == {"group": "autoscaling", "version": "v2", "kind": "HorizontalPodAutoscaler"}
        assert req["requestKind"] == {"group": "autoscaling", "version": "v1", "kind": "HorizontalPodAutoscaler"}
        assert req["object"]["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 50
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", name, check=False)


IN_CLUSTER_SERVER = '''
import json, ssl
from http.server import BaseHTTPRequestHandler, HTTPServer

class H(BaseHTTPRequestHandler):
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["request"]
        name = ((req.get("object") or {}).get("metadata") or {}).get("name", "")
        resp = {"uid": req["uid"], "allowed": not name.startswith("bad-")}
        if not resp["allowed"]:
            resp["status"] = {"code": 403, "reason": "Forbidden", "message": "the in-cluster webhook says no"}
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

srv = HTTPServer(("0.0.0.0", 8443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/tls/tls.crt", "/tls/tls.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
'''


def test_webhook_served_by_a_deployment(cluster, namespace, tmp_path):
    """What an operator chart installs: the webhook runs in a pod of a Deployment,
    behind a Service with a selector (its Endpoints from the endpoints controller),
    its certificate from a Secret, and the configuration names the Service."""
    from admission_webhook_server import make_ca_and_cert

    ca, cert, key = make_ca_and_cert([f"webhook.{namespace}.svc"])
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    (tmp_path / "server.py").write_text(IN_CLUSTER_SERVER)
    cluster.kubectl("create", "secret", "tls", "webhook-tls", "-n", namespace, f"--cert={tmp_path / 'tls.crt'}",
                    f"--key={tmp_path / 'tls.key'}")
    cluster.kubectl("create", "configmap", "webhook-code", "-n", namespace, f"--from-file={tmp_path / 'server.py'}")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input="""
apiVersion: apps/v1
kind: Deployment
metadata: {name: webhook}
spec:
  selector: {matchLabels: {app: webhook}}
  template:
    metadata: {labels: {app: webhook}}
    spec:
      containers:
      - name: server
        image: demo:v1
        command: [python3, /code/server.py]
        ports: [{containerPort: 8443, name: https}]
        readinessProbe: {tcpSocket: {port: 8443}, periodSeconds: 1}
        volumeMounts: [{name: tls, mountPath: /tls}, {name: code, mountPath: /code}]
      volumes:
      - {name: tls, secret: {secretName: webhook-tls}}
      - {name: code, configMap: {name: webhook-code}}
---
apiVersion: v1
kind: Service
metadata: {name: webhook}
spec:
  selector: {app: webhook}
  ports: [{name: https, port: 443, targetPort: https}]
""")
    cluster.kubectl("rollout", "status", "-n", namespace, "deploy/webhook", "--timeout=90s", timeout=120)
    name = f"e2e-deployed-{namespace}"
    bundle = base64.b64encode(ca).decode()
    cluster.kubectl("apply", "-f", "-", input=config("ValidatingWebhookConfiguration", name, [
        hook("deployed.kybern.test", f"{{service: {{namespace: {namespace}, name: webhook}}, caBundle: {bundle}}}",
             namespace, ops="[CREATE]", resources="[configmaps]")]))
    try:
        want = 'admission webhook "deployed.kybern.test" denied the request: the in-cluster webhook says no'
        cluster.wait_for(lambda: want in cluster.kubectl("create", "configmap", "bad-cm", "-n", namespace,
                                                         check=False).stderr,
                         timeout=20, what="the deployed webhook to deny")
        cluster.kubectl("create", "configmap", "good-cm", "-n", namespace)
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, check=False)
