"""kybern's own test (not vendored): what a user sees with kopf's `examples/17-admission`
running, beyond what kopf's `test_examples.py` asserts (that the operator runs and exits
cleanly). kopf serves the webhooks and manages `auto.kopf.dev`; kybern calls them on
`kubectl apply`/`patch`, and kubectl prints the warnings and denials as with
kube-apiserver: the handlers' warnings (one of which reports the caller's User-Agent),
a mutation, denials with the webhook's message and code, a dry run that the
`dryrun`-aware handler lets through, and the `status` subresource's own check."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import kopf
import pytest
from kopf._core.intents.registries import SmartOperatorRegistry
from kopf.testing import KopfRunner

from tests.conftest import KUBECTL, Cluster

HERE = Path(__file__).parent
EXAMPLE = HERE / "examples" / "17-admission" / "example.py"
OBJ = HERE / "examples" / "obj.yaml"


def kubectl(c: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, *args], check=False, env={**c.env, "KUBECONFIG": str(c.kubeconfig)},
                          capture_output=True, text=True, timeout=30)


def webhooks(c: Cluster, kind: str) -> int:
    p = kubectl(c, "get", kind, "auto.kopf.dev", "-o", "jsonpath={.webhooks[*].name}")
    return len(p.stdout.split()) if p.returncode == 0 else -1


@pytest.fixture(scope="module")
def applied(kopf_cluster: Cluster) -> Iterator[subprocess.CompletedProcess[str]]:
    """The example operator running, and the result of `kubectl apply -f examples/obj.yaml`."""
    assert kubectl(kopf_cluster, "apply", "-f", str(HERE / "examples" / "crd.yaml")).returncode == 0
    kubectl(kopf_cluster, "delete", "-f", str(OBJ), "--ignore-not-found", "--wait=true")
    saved = kopf.get_default_registry()
    kopf.set_default_registry(SmartOperatorRegistry())
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 10
    try:
        with KopfRunner(["run", "--all-namespaces", "--standalone", str(EXAMPLE)],
                        timeout=60, settings=settings) as runner:
            deadline = time.monotonic() + 30
            while (webhooks(kopf_cluster, "validatingwebhookconfiguration") != 4
                   or webhooks(kopf_cluster, "mutatingwebhookconfiguration") != 1):
                assert time.monotonic() < deadline, "kopf did not configure its webhooks"
                time.sleep(0.2)
            yield kubectl(kopf_cluster, "apply", "-f", str(OBJ))
            kubectl(kopf_cluster, "delete", "-f", str(OBJ), "--wait=true")
    finally:
        kopf.set_default_registry(saved)
    assert runner.exception is None
    assert runner.exit_code == 0
    # kopf empties the configurations it manages when it stops
    assert webhooks(kopf_cluster, "validatingwebhookconfiguration") == 0


def test_mutation_warnings_and_denials(kopf_cluster: Cluster,
                                       applied: subprocess.CompletedProcess[str]) -> None:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    assert applied.returncode == 0, applied.stderr
    assert applied.stdout == "kopfexample.kopf.dev/kopf-example-1 created\n"
    assert "Warning: SSL peer is not identified.\n" in applied.stderr  # no client certificate, as upstream
    assert "Warning: Also update status.field to match spec.field: 'value' != None\n" in applied.stderr

    # mutate1 (objectSelector somelabel=somevalue) injected a field
    got = kubectl(kopf_cluster, "get", "kex", "kopf-example-1", "-o", "jsonpath={.spec.injected}")
    assert got.stdout == "123"

    wrong = kubectl(kopf_cluster, "patch", "kex", "kopf-example-1", "--type", "merge",
                    "-p", '{"spec":{"field":"wrong"}}')
    assert wrong.returncode == 1
    assert ('Error from server: admission webhook "validate1.auto.kopf.dev" denied the request: '
            "Meh! I don't like it. Change the field.\n") in wrong.stderr

    # validate1 skips dry runs (kopf passes the review's dryRun as `dryrun`)
    dry = kubectl(kopf_cluster, "patch", "kex", "kopf-example-1", "--type", "merge",
                  "-p", '{"spec":{"field":"wrong"}}', "--dry-run=server")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == "kopfexample.kopf.dev/kopf-example-1 patched\n"

    # validate2 denies with its own code and no reason: the apiserver answers with the code
    # (webhookerrors.ToStatusErr keeps codes >= 400) and, as Go encodes metav1.Status, no
    # `reason` key at all (`json:"reason,omitempty"`)
    api = client.CustomObjectsApi(config.new_client_from_config(str(kopf_cluster.kubeconfig)))
    with pytest.raises(ApiException) as e:
        api.patch_namespaced_custom_object("kopf.dev", "v1", "default", "kopfexamples", "kopf-example-1",
                                           {"spec": {"field": "not-allowed"}})
    assert e.value.status == 555
    assert e.value.body == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"admission '
        'webhook \\"validate2.spec.field.auto.kopf.dev\\" denied the request: I\'m too lazy anyway. '
        'Go away!","code":555}\n')

    # validate_subresources (rules on kopfexamples/*) sees the status subresource
    status = kubectl(kopf_cluster, "patch", "kex", "kopf-example-1", "--subresource=status",
                     "--type", "merge", "-p", '{"status":{"field":"other"}}')
    assert status.returncode == 1
    assert ('Error from server: admission webhook "validate-subresources.auto.kopf.dev" denied the '
            "request: status.field MUST be equal to spec.field!\n") in status.stderr
    status = kubectl(kopf_cluster, "patch", "kex", "kopf-example-1", "--subresource=status",
                     "--type", "merge", "-p", '{"status":{"field":"value"}}')
    assert status.returncode == 0, status.stderr


def test_webhooks_called_as_kube_apiserver(applied: subprocess.CompletedProcess[str]) -> None:
    # kube-apiserver's webhook client identifies itself as "kube-apiserver-admission"
    # (k8s.io/apiserver/pkg/util/webhook/authentication.go); authhook reports what it sees
    assert "Warning: Accessing as user-agent: kube-apiserver-admission\n" in applied.stderr
