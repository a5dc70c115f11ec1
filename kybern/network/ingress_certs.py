"""Certificates for the ingress: checking `kubernetes.io/tls` Secrets before a data
plane is given them (a malformed one must never break the config), and the
self-signed default certificate served when no Secret matches — ingress-nginx's
"Kubernetes Ingress Controller Fake Certificate"."""

from __future__ import annotations

import base64
import datetime
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

FAKE_CN = "Kubernetes Ingress Controller Fake Certificate"


def tls_problem(secret: dict[str, Any] | None, ref: str) -> str | None:
    """None when `secret` holds a usable certificate and matching key; else the
    warning to record on the Ingress."""
    if secret is None:
        return f"secret {ref} does not exist"
    data = secret.get("data") or {}
    try:
        crt = base64.b64decode(data.get("tls.crt") or "")
        key = base64.b64decode(data.get("tls.key") or "")
    except ValueError:
        return f"secret {ref} is not a valid TLS secret: data is not base64"
    if not crt or not key:
        return f"secret {ref} is not a valid TLS secret: it needs tls.crt and tls.key"
    try:
        cert = x509.load_pem_x509_certificates(crt)[0]
        pkey = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError, IndexError) as e:
        return f"secret {ref} is not a valid TLS secret: {e}"
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.PEM, pub) != \
            pkey.public_key().public_bytes(serialization.Encoding.PEM, pub):
        return f"secret {ref} is not a valid TLS secret: the key does not match the certificate"
    return None


def self_signed(common_name: str, hosts: list[str] | None = None, days: int = 365) -> tuple[bytes, bytes]:
    """A fresh self-signed (cert PEM, key PEM) for `common_name` (and SANs `hosts`)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Co"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days)))
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]),
                                        critical=False)
    cert = builder.sign(key, hashes.SHA256())
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def default_cert(directory: Path) -> tuple[bytes, bytes]:
    """The controller's default certificate, made once and kept in `directory`."""
    crt, key = directory / "default.crt", directory / "default.key"
    if crt.exists() and key.exists():
        return crt.read_bytes(), key.read_bytes()
    directory.mkdir(parents=True, exist_ok=True)
    c, k = self_signed(FAKE_CN, ["ingress.local"])
    write_private(key, k)
    crt.write_bytes(c)
    return c, k


def write_private(path: Path, data: bytes) -> None:
    """Write key material readable by its owner only, replacing atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
