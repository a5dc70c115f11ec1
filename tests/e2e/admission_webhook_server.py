"""A real HTTPS admission webhook for tests/e2e/test_admission_webhooks.py: a
small http.server app behind TLS, with a certificate from its own CA (the test
puts the CA in the configuration's caBundle). It answers AdmissionReview v1:

  /validate  denies objects named `bad-*` (403, with a message), warns about
             objects named `warn-*`, allows the rest
  /mutate    adds the label `mutated=yes` and the annotation `webhook/seen`
             with a JSONPatch
  /stamp     writes the object's label keys into the annotation `webhook/labels`
  /slow      answers after 3 s (for timeoutSeconds)

and keeps every request it was sent, for the tests to look at."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import secrets
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_ca_and_cert(hosts: list[str]) -> tuple[bytes, bytes, bytes]:
    """(CA cert PEM, server cert PEM, server key PEM) for `hosts` (DNS names or IPs)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"webhook-test-ca-{secrets.token_hex(4)}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


class WebhookServer:
    def __init__(self, hosts: list[str]) -> None:
        self.ca_pem, cert, key = make_ca_and_cert(hosts)
        self.reviews: list[dict[str, Any]] = []
        d = Path(tempfile.mkdtemp(prefix="webhook-"))
        (d / "tls.crt").write_bytes(cert)
        (d / "tls.key").write_bytes(key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(d / "tls.crt", d / "tls.key")
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                review = json.loads(body)
                path = self.path.split("?")[0]
                owner.reviews.append({"path": path, "query": self.path.partition("?")[2], **review})
                out = owner.answer(path, review["request"])
                data = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": out}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca_pem).decode()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, req: dict[str, Any]) -> dict[str, Any]:
        obj = req.get("object") or req.get("oldObject") or {}
        name = (obj.get("metadata") or {}).get("name") or req.get("name") or ""  # CONNECT: the options
        out: dict[str, Any] = {"uid": req["uid"], "allowed": True}
        if path == "/validate":
            if name.startswith("bad-"):
                out = {"uid": req["uid"], "allowed": False,
                       "status": {"code": 403, "reason": "Forbidden", "message": f"{name} is not welcome here"}}
            elif name.startswith("warn-"):
                out["warnings"] = [f"{name} looks suspicious"]
        elif path == "/mutate" and req.get("object") is not None:
            ops: list[dict[str, Any]] = []
            meta = req["object"].get("metadata") or {}
            if "labels" not in meta:
                ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
            if "annotations" not in meta:
                ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
            ops.append({"op": "add", "path": "/metadata/labels/mutated", "value": "yes"})
            ops.append({"op": "add", "path": "/metadata/annotations/webhook~1seen", "value": req["operation"]})
            out["patchType"] = "JSONPatch"
            out["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        elif path == "/stamp" and req.get("object") is not None:
            meta = req["object"].get("metadata") or {}
            ops = [] if "annotations" in meta else [{"op": "add", "path": "/metadata/annotations", "value": {}}]
            ops.append({"op": "add", "path": "/metadata/annotations/webhook~1labels",
                        "value": ",".join(sorted(meta.get("labels") or {}))})
            out["patchType"] = "JSONPatch"
            out["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        elif path == "/slow":
            time.sleep(3)
        return out

    def requests_for(self, path: str) -> list[dict[str, Any]]:
        return [r["request"] for r in self.reviews if r["path"] == path]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
