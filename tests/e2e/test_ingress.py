"""The ingress story as a user lives it, with kubectl, openssl and curl: a TLS
Secret, a 3-replica echo Deployment behind a Service, an Ingress for
echo.example.test with TLS → HTTPS answers from every replica, plain HTTP is
redirected with 308, status shows the address; a missing Service is reported
as a Warning event without breaking the other routes.

The cluster is private: it serves ingress on free high ports (the shared
session cluster may not own 80/443)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import Cluster, free_port, start_cluster, stop_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")]

HOST = "echo.example.test"
# a tiny HTTP server answering with its pod name; SO_REUSEPORT lets the replicas
# share one port when pods share the host network (the process runtime)
ECHO = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = os.environ["HOSTNAME"].encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a): pass
class S(http.server.ThreadingHTTPServer):
    allow_reuse_port = True
S(("", int(os.environ["PORT"])), H).serve_forever()
"""


@pytest.fixture(scope="module")
def ingress_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, int, int]]:
    http, https = free_port(), free_port()
    c = start_cluster(tmp_path_factory.mktemp("ingress"), "--ingress-http-port", str(http),
                      "--ingress-https-port", str(https))
    yield c, http, https
    stop_cluster(c)


def curl(*args: str) -> tuple[str, str]:
    """(HTTP status, body) of one curl call."""
    p = subprocess.run(["curl", "-sk", "--max-time", "5", "-o", "-", "-w", "\n%{http_code} %{redirect_url}",
                        *args], capture_output=True, text=True, timeout=10, check=False)
    body, _, tail = p.stdout.rpartition("\n")
    return tail, body


def apply(c: Cluster, ns: str, *objs: dict) -> None:
    # a YAML stream, not a v1 List: kubectl validates Lists against OpenAPI v2
    c.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(objs))


def echo_objects(port: int) -> list[dict]:
    labels = {"app": "echo"}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo"},
         "spec": {"replicas": 3, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                 "name": "echo", "image": "demo:v1", "command": ["python3", "-c", ECHO],
                 "env": [{"name": "PORT", "value": str(port)}],
                 "ports": [{"name": "http", "containerPort": port}],
                 "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
         "spec": {"selector": labels, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}},
    ]


def ingress(name: str, service: str, *, tls: bool = True, host: str = HOST) -> dict:
    spec: dict = {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": service, "port": {"name": "web"}}}}]}}]}
    if tls:
        spec["tls"] = [{"hosts": [host], "secretName": "echo-tls"}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name}, "spec": spec}


def test_tls_ingress_to_a_deployment(ingress_cluster, tmp_path: Path) -> None:
    c, http, https = ingress_cluster
    ns = "ingress-story"
    c.kubectl("create", "namespace", ns)
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    c.kubectl("create", "secret", "tls", "echo-tls", "-n", ns, f"--cert={crt}", f"--key={key}")
    apply(c, ns, *echo_objects(free_port()), ingress("echo", "echo"))

    classes = c.kjson("get", "ingressclass")["items"]
    assert [(k["metadata"]["name"], k["spec"]["controller"],
             k["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"]) for k in classes] == \
        [("kybern", "kybern.io/ingress-nginx", "true")]

    resolve = ["--resolve", f"{HOST}:{https}:127.0.0.1", "--resolve", f"{HOST}:{http}:127.0.0.1"]
    url = f"https://{HOST}:{https}/"
    c.wait_for(lambda: curl(*resolve, url)[0].startswith("200"), timeout=40, what="HTTPS 200 through the ingress")
    c.kubectl("rollout", "status", "deployment/echo", "-n", ns, "--timeout=60s")
    pods = {p["metadata"]["name"] for p in c.kjson("get", "pods", "-n", ns, "-l", "app=echo")["items"]}
    assert len(pods) == 3
    # every Ready replica answers once its endpoint has reached the proxy's configuration
    c.wait_for(lambda: {curl(*resolve, url)[1] for _ in range(30)} == pods, timeout=30,
               what="responses from all three replicas")

    # the certificate is the Secret's (SNI), verified against the CA we made
    ok = subprocess.run(["curl", "-s", "--cacert", str(crt), *resolve, url], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and ok.stdout in pods
    # ingress-nginx's ssl-redirect: plain HTTP for a TLS host → 308 to HTTPS
    status = curl(*resolve, f"http://{HOST}:{http}/a?b=1")[0]
    assert status == f"308 https://{HOST}:{https}/a?b=1"

    ing = c.wait_for(lambda: c.kjson("get", "ingress", "echo", "-n", ns)["status"]["loadBalancer"].get("ingress"),
                     what="status.loadBalancer")
    assert ing == [{"ip": "127.0.0.1"}]
    assert "127.0.0.1" in c.kubectl("get", "ingress", "echo", "-n", ns).stdout
    events = c.kjson("get", "events", "-n", ns, "--field-selector", "involvedObject.name=echo,reason=Sync")
    assert events["items"][0]["message"] == "Scheduled for sync"


def test_missing_service_is_a_warning_and_breaks_nothing_else(ingress_cluster) -> None:
    c, http, _ = ingress_cluster
    ns = "ingress-broken"
    c.kubectl("create", "namespace", ns)
    apply(c, ns, *echo_objects(free_port()), ingress("good", "echo", tls=False, host="good.example.test"),
          ingress("broken", "nope", tls=False, host="broken.example.test"))

    def warning() -> list[str]:
        items = c.kjson("get", "events", "-n", ns, "--field-selector", "involvedObject.name=broken")["items"]
        return [e["message"] for e in items if e["type"] == "Warning"]

    assert c.wait_for(warning, what="Warning event") == [f"service {ns}/nope does not exist"]
    good = ["--resolve", f"good.example.test:{http}:127.0.0.1", f"http://good.example.test:{http}/"]
    c.wait_for(lambda: curl(*good)[0].startswith("200"), timeout=40, what="the good route")
    broken = ["--resolve", f"broken.example.test:{http}:127.0.0.1", f"http://broken.example.test:{http}/"]
    assert curl(*broken)[0].startswith("503")
