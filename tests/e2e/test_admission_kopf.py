"""A real kopf operator's admission handlers (@kopf.on.validate, @kopf.on.mutate)
against kybern: kopf runs its own WebhookServer (HTTPS, a certificate this test
makes) and manages the Validating/MutatingWebhookConfigurations itself; kubectl
then sees the denial, the warning and the mutation (tests/e2e/kopf_admission.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from admission_webhook_server import make_ca_and_cert
from conftest import KUBECTL
from tests.conftest import free_port

HERE = Path(__file__).parent
GROUP = "admission.e2e.kybern.dev"
MANAGED = f"gadgets.{GROUP}"

CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: string}}
              color: {{type: string}}
"""


def gadget(name: str, ns: str, size: str) -> str:
    return f"""
apiVersion: {GROUP}/v1
kind: Gadget
metadata: {{name: {name}, namespace: {ns}}}
spec: {{size: {size}}}
"""




def test_kopf_admission_handlers(cluster, namespace, tmp_path):
    pytest.importorskip("kopf")
    cluster.kubectl("apply", "-f", "-", input=CRD)
    cluster.wait_for(lambda: cluster.kubectl("get", f"gadgets.{GROUP}", "-n", namespace, check=False).returncode
                     == 0, what="the Gadget CRD to be served")
    ca, cert, key = make_ca_and_cert(["127.0.0.1"])
    for name, data in (("ca.crt", ca), ("tls.crt", cert), ("tls.key", key)):
        (tmp_path / name).write_bytes(data)
    env = {**cluster.env, "PYTHONUNBUFFERED": "1", "WEBHOOK_PORT": str(free_port()),
           "WEBHOOK_CA": str(tmp_path / "ca.crt"), "WEBHOOK_CERT": str(tmp_path / "tls.crt"),
           "WEBHOOK_KEY": str(tmp_path / "tls.key")}
    log_path = cluster.dir / f"kopf-admission-{namespace}.log"
    log = open(log_path, "w")  # noqa: SIM115 (closed when kopf has stopped)
    kopf = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "-n", namespace,
                             str(HERE / "kopf_admission.py")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        # kopf writes its managed configurations once its server listens
        cluster.wait_for(lambda: cluster.kubectl("get", "validatingwebhookconfiguration", MANAGED,
                                                 check=False).returncode == 0 and
                         cluster.kubectl("get", "mutatingwebhookconfiguration", MANAGED,
                                         check=False).returncode == 0,
                         timeout=30, what=f"kopf's managed configurations\n{log_path.read_text()[-3000:]}")
        vwc = cluster.kjson("get", "validatingwebhookconfiguration", MANAGED)
        assert vwc["webhooks"][0]["name"] == f"check-size.{MANAGED}"

        def denied() -> bool:
            p = cluster.kubectl("apply", "-f", "-", input=gadget("g-huge", namespace, "huge"), check=False)
            return p.returncode == 1 and \
                f'admission webhook "check-size.{MANAGED}" denied the request: huge gadgets do not fit' in p.stderr
        cluster.wait_for(denied, timeout=20, what=f"kopf's validate handler to deny\n{log_path.read_text()[-3000:]}")

        p = cluster.kubectl("apply", "-f", "-", input=gadget("g-large", namespace, "large"))
        assert "Warning: large gadgets are heavy" in p.stderr
        got = cluster.kjson("get", f"gadgets.{GROUP}", "g-large", "-n", namespace)
        assert got["spec"] == {"size": "large", "color": "blue"}  # kopf's mutate handler defaulted it
    finally:
        kopf.send_signal(signal.SIGINT)
        try:
            kopf.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(kopf.pid, signal.SIGKILL)
        log.close()
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            subprocess.run([KUBECTL, "delete", kind, MANAGED, "--ignore-not-found"], env=cluster.env,
                           capture_output=True, timeout=30, check=False)
        cluster.kubectl("delete", "crd", f"gadgets.{GROUP}", "--wait=false", check=False)
