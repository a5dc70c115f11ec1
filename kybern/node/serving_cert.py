"""The node's serving certificate, as the kubelet's default: with no certificate
given, the kubelet makes a self-signed pair for its HTTPS port (10250) and keeps it
in its cert dir (`kubelet.crt`, the certificate then the CA that signed it, and
`kubelet.key`; upstream's certutil.GenerateSelfSignedCertKey: a CA named
`<host>-ca@<unix time>` signs `<host>@<unix time>` for the host name and the node's
addresses, for a year). Clients that reach the node API directly (Prometheus,
metrics-server) skip verification or are given this CA, as with a kubelet; the
apiserver does not verify it (upstream's default without
--kubelet-certificate-authority).

`ensure()` keeps a pair that is readable, unexpired and covers the node's names; it
imports the x509 library only when it must look or make one. The agent calls it in
its bootstrap child (bootstrap.py), so the library never stays in the agent."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import time
from pathlib import Path
from typing import Any

CERT, KEY = "kubelet.crt", "kubelet.key"
VALIDITY = dt.timedelta(days=365)


def paths(data_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    pki = Path(data_dir) / "pki"
    return pki / CERT, pki / KEY


def _sans(name: str, addresses: list[str]) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the certificate is for."""
    dns, ips = [name], []
    for a in addresses:
        try:
            ips.append(str(ipaddress.ip_address(a)))
        except ValueError:
            dns.append(a)
    if "127.0.0.1" in ips and "localhost" not in dns:
        dns.append("localhost")
    return sorted(set(dns)), sorted(set(ips))


def _good(cert_file: Path, key_file: Path, name: str, addresses: list[str]) -> bool:
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(cert_file.read_bytes())
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_file, key_file)
        ext = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # noqa: BLE001 -- missing, unreadable, or not a pair: make a new one
        return False
    dns, ips = _sans(name, addresses)
    have_ips = {str(i) for i in ext.get_values_for_type(x509.IPAddress)}
    now = dt.datetime.now(dt.UTC)
    return (set(dns) <= set(ext.get_values_for_type(x509.DNSName)) and set(ips) <= have_ips
            and now < certs[0].not_valid_after_utc - dt.timedelta(days=1))


def ensure(data_dir: str | os.PathLike[str], name: str, addresses: list[str]) -> tuple[str, str]:
    """(cert file, key file) of the node's serving pair, made anew unless the kept one
    is good for `name` and `addresses`."""
    cert_file, key_file = paths(data_dir)
    if not _good(cert_file, key_file, name, addresses):
        _generate(cert_file, key_file, name, addresses)
    return str(cert_file), str(key_file)


def _generate(cert_file: Path, key_file: Path, name: str, addresses: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    stamp = int(time.time())
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}-ca@{stamp}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + VALIDITY)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    dns, ips = _sans(name, addresses)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                                 f"{name}@{stamp}")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = key_file.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.replace(tmp, key_file)
    tmp = cert_file.with_suffix(".tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, cert_file)


def server_context(data_dir: str | os.PathLike[str], name: str, addresses: list[str],
                   client_ca: str | None = None) -> ssl.SSLContext:
    """The TLS context the node API serves with: the kept pair, made here only if none
    exists yet (a node run inside `kybern up`, or a bootstrap child that failed). With
    `client_ca` (the cluster's CA, the kubelet's --client-ca-file) a client certificate
    is asked for, not required; one that is sent must chain to it."""
    cert_file, key_file = paths(data_dir)
    if not (cert_file.exists() and key_file.exists()):
        ensure(data_dir, name, addresses)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)  # the cluster CA predates SKI/AKI extensions
    return ctx


def peer_user(ssl_object: ssl.SSLObject | None) -> dict[str, Any] | None:
    """The x509 authenticator's user for a verified client certificate: the subject's
    CN, its O values as groups (upstream's CommonNameUserConversion)."""
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    if not cert:
        return None
    attrs = [kv for rdn in cert.get("subject") or () for kv in rdn]
    cn = next((v for k, v in attrs if k == "commonName"), "")
    if not cn:
        return None
    return {"username": cn, "groups": [*(v for k, v in attrs if k == "organizationName"), "system:authenticated"]}

