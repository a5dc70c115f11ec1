"""Admission webhooks' matchConditions (CEL) end to end: a real HTTPS webhook
(tests/e2e/admission_webhook_server.py), configurations applied with kubectl,
and the apiserver deciding from `object`, `oldObject`, `request` and
`authorizer` whether to call it, as kube-apiserver does: a false condition
skips the webhook, an error fails the request (403) under failurePolicy Fail
or skips the webhook under Ignore, and an expression that does not compile is
refused with the configuration."""

from __future__ import annotations

import pytest
from admission_webhook_server import WebhookServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> WebhookServer:
    s = WebhookServer(["127.0.0.1", "localhost"])
    yield s
    s.stop()


def configuration(server: WebhookServer, name: str, ns: str, conditions: str, policy: str = "Fail") -> str:
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: {name}}}
webhooks:
- name: {name}.kybern.test
  clientConfig: {{url: "{server.url('/validate')}", caBundle: {server.ca_bundle}}}
  rules: [{{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE, DELETE], resources: [pods]}}]
  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
  failurePolicy: {policy}
  sideEffects: None
  admissionReviewVersions: [v1]
  matchConditions:
{conditions}"""


def run(cluster, ns: str, name: str, *extra: str):
    return cluster.kubectl("run", name, "-n", ns, "--image=busybox", *extra, "--", "sleep", "3600", check=False)


def wait_denied(cluster, ns: str) -> None:
    """The configuration reaches the apiserver through its watch: wait until it denies."""
    def denied() -> bool:
        p = cluster.kubectl("run", "bad-probe", "-n", ns, "--image=busybox", "--dry-run=server", check=False)
        return p.returncode != 0
    cluster.wait_for(denied, timeout=15, what="the webhook to deny")


def test_conditions_decide_whether_the_webhook_is_called(cluster, server, namespace):
    conds = """
  - name: not-exempt
    expression: "!has(object.metadata.labels) || !('exempt' in object.metadata.labels)"
  - name: writes-only
    expression: "request.operation in ['CREATE', 'UPDATE'] && request.userInfo.username != ''"
  - name: may-create
    expression: "authorizer.requestResource.check('create').allowed()"
  - name: no-old-or-changed
    expression: "oldObject == null || object.metadata.labels != oldObject.metadata.labels"
"""
    cfg = configuration(server, "mc-select", namespace, conds)
    cluster.kubectl("apply", "-f", "-", input=cfg)
    try:
        wait_denied(cluster, namespace)
        before = len(server.requests_for("/validate"))
        p = run(cluster, namespace, "bad-one")
        assert p.returncode == 1
        assert ('admission webhook "mc-select.kybern.test" denied the request: bad-one is not welcome here'
                in p.stderr)
        assert len(server.requests_for("/validate")) == before + 1

        # a false condition: the webhook is not called, the pod is created
        p = run(cluster, namespace, "bad-two", "--labels=exempt=yes")
        assert p.returncode == 0, p.stderr
        assert len(server.requests_for("/validate")) == before + 1
        # deletes are excluded by `request.operation`
        cluster.kubectl("delete", "pod", "bad-two", "-n", namespace, "--wait=false")
        assert len(server.requests_for("/validate")) == before + 1
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", "mc-select", check=False)


def test_condition_errors_follow_the_failure_policy(cluster, server, namespace):
    conds = """
  - name: broken
    expression: "object.spec.nosuch == 'x'"
"""
    cluster.kubectl("apply", "-f", "-", input=configuration(server, "mc-error", namespace, conds))
    try:
        wait_denied(cluster, namespace)
        p = run(cluster, namespace, "fine")
        assert p.returncode == 1
        assert p.stderr.strip() == ('Error from server (Forbidden): pods "fine" is forbidden: expression '
                                    "'object.spec.nosuch == 'x'' resulted in error: no such key: nosuch")
        # failurePolicy Ignore: the webhook is skipped, the request goes on
        cluster.kubectl("apply", "-f", "-", input=configuration(server, "mc-error", namespace, conds, "Ignore"))
        cluster.wait_for(lambda: run(cluster, namespace, "bad-ignored").returncode == 0, timeout=15,
                         what="the Ignore policy to apply")
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", "mc-error", check=False)


def test_expressions_that_do_not_compile_are_refused(cluster, server):
    conds = """
  - name: syntax
    expression: "object.metadata.name =="
  - name: unknown
    expression: "params.x == 1"
"""
    p = cluster.kubectl("apply", "-f", "-", check=False,
                        input=configuration(server, "mc-bad", "nowhere", conds))
    assert p.returncode == 1
    assert 'The ValidatingWebhookConfiguration "mc-bad" is invalid:' in p.stderr
    assert ('webhooks[0].matchConditions[0].expression: Invalid value: "object.metadata.name ==": '
            "compilation failed: ERROR: <input>:1:") in p.stderr
    assert ('webhooks[0].matchConditions[1].expression: Invalid value: "params.x == 1": compilation failed: '
            "ERROR: <input>:1:1: undeclared reference to 'params'") in p.stderr
