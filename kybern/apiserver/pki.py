"""The cluster's certificates: a self-signed CA and a serving certificate for
the apiserver, created once in the data dir (as kubeadm's `certs` phase)."""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)


def ensure_ca(pki: Path) -> tuple[Path, Path]:
    pki.mkdir(parents=True, exist_ok=True)
    crt, key = pki / "ca.crt", pki / "ca.key"
    if crt.exists() and key.exists():
        return crt, key
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kybern-ca")])
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(k, hashes.SHA256()))
    _write_key(key, k)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt, key


def ensure_serving_cert(pki: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A serving certificate for `hosts` (names or IPs), re-issued when the set changes."""
    ca_crt, ca_key = ensure_ca(pki)
    crt, key = pki / "apiserver.crt", pki / "apiserver.key"
    # 10.96.0.1: the `kubernetes` Service's address, what in-cluster clients dial
    hosts = sorted(set(hosts + ["localhost", "127.0.0.1", "::1", "10.96.0.1", "kubernetes", "kubernetes.default",
                                "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
                                socket.gethostname()]))
    marker = pki / "apiserver.hosts"
    if crt.exists() and key.exists() and marker.exists() and marker.read_text() == "\n".join(hosts):
        return crt, key
    ca = x509.load_pem_x509_certificate(ca_crt.read_bytes())
    cak = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    k = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca.subject).public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(cak, hashes.SHA256()))  # type: ignore[arg-type]
    _write_key(key, k)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    marker.write_text("\n".join(hosts))
    return crt, key


def ensure_kubelet_client_cert(pki: Path) -> tuple[Path, Path]:
    """The client certificate the apiserver shows the node agents (kubeadm's
    apiserver-kubelet-client): CN kube-apiserver-kubelet-client, O system:masters, so a
    node's SubjectAccessReview for it allows every nodes/* subresource."""
    ca_crt, ca_key = ensure_ca(pki)
    crt, key = pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key"
    if crt.exists() and key.exists():
        return crt, key
    ca = x509.load_pem_x509_certificate(ca_crt.read_bytes())
    cak = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    k = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-kubelet-client")]))
            .issuer_name(ca.subject).public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=3650))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(cak, hashes.SHA256()))  # type: ignore[arg-type]
    tmp = key.with_suffix(".tmp")
    _write_key(tmp, k)
    os.replace(tmp, key)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt, key


def ensure_token(path: Path) -> str:
    """A random bearer token stored in the data dir (kept across restarts)."""
    if path.exists():
        return path.read_text().strip()
    import secrets

    tok = secrets.token_hex(24)
    path.write_text(tok + "\n")
    os.chmod(path, 0o600)
    return tok
