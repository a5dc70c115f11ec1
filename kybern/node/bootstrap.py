"""A node's own identity, as the kubelet's TLS bootstrap: with the join token the
agent asks for a client certificate for `system:node:NAME` (group `system:nodes`)
through a CertificateSigningRequest for the signer
kubernetes.io/kube-apiserver-client-kubelet; the csrapproving controller approves
it (the join token may ask for node client certificates) and csrsigning issues it.
The key and certificate are kept in `<data dir>/pki/` and reused while they are
good (the cluster's CA signed them, the name matches, a tenth of the lifetime is
left); otherwise a new pair is asked for at start. docs/certificates.md.

The agent runs it in a short-lived child process (`node_certificate_in_child`):
the x509 library it needs would otherwise stay in the long-running agent's memory
(~8 MB of its ≤ 60 MB with 50 idle pods; docs/benchmarks.md, issue 4), so this
module imports it only where it is used."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from kybern.client.http import Client
from kybern.client.resources import CERTIFICATESIGNINGREQUESTS
from kybern.machinery import errors

log = logging.getLogger(__name__)

CERT, KEY = "kubelet-client.crt", "kubelet-client.key"


class BootstrapError(RuntimeError):
    pass


def usable(cert_file: Path, ca_file: str | None, name: str, now: dt.datetime | None = None) -> bool:
    """Is the kept certificate this node's, from this cluster's CA, with a tenth of its life left?"""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        if ca_file:
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(Path(ca_file).read_bytes()))
    except Exception:  # noqa: BLE001 -- unreadable, not PEM, or InvalidSignature (another cluster's CA)
        return False
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or cns[0].value != f"system:node:{name}":
        return False
    now = now or dt.datetime.now(dt.UTC)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now < end - (end - start) / 10


def request(name: str) -> tuple[bytes, bytes]:
    """A new P-256 key (PEM) and its CSR (PEM) for system:node:NAME in system:nodes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{name}")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def csr_name(csr_pem: bytes) -> str:
    """`node-csr-` and a digest of the request, as the kubelet names its CSRs."""
    return "node-csr-" + base64.urlsafe_b64encode(hashlib.sha256(csr_pem).digest()).decode().rstrip("=")


async def node_certificate(client: Client, name: str, data_dir: str | os.PathLike[str],
                           timeout: float = 60.0) -> tuple[str, str]:
    """(cert file, key file) of this node's client certificate; asks for one with
    `client` (the join token) unless a usable one is kept. BootstrapError if none is
    issued within `timeout` or the request is denied."""
    from kybern.api import certificates as capi

    pki = Path(data_dir) / "pki"
    cert_file, key_file = pki / CERT, pki / KEY
    if key_file.exists() and usable(cert_file, client.ca_file, name):
        return str(cert_file), str(key_file)
    key_pem, csr_pem = request(name)
    obj_name = csr_name(csr_pem)
    try:
        await client.create(CERTIFICATESIGNINGREQUESTS, {
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": obj_name},
            "spec": {"request": base64.b64encode(csr_pem).decode(), "signerName": capi.KUBE_APISERVER_CLIENT_KUBELET,
                     "usages": ["digital signature", "client auth"]}})
    except errors.StatusError as e:
        if e.code != 409:
            raise BootstrapError(f"cannot request a client certificate: {e.message}") from None
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        obj = await client.get(CERTIFICATESIGNINGREQUESTS, obj_name)
        for typ in (capi.DENIED, capi.FAILED):
            if capi.has_true(obj, typ):
                cond = next(c for c in obj["status"]["conditions"] if c.get("type") == typ)
                raise BootstrapError(f"certificate signing request {obj_name} {typ.lower()}: "
                                     f"{cond.get('reason', '')} {cond.get('message', '')}".rstrip())
        cert_b64 = (obj.get("status") or {}).get("certificate")
        if cert_b64:
            break
        if asyncio.get_running_loop().time() > deadline:
            raise BootstrapError(f"certificate signing request {obj_name} not issued within {timeout:.0f} s "
                                 "(are the csrapproving and csrsigning controllers running?)")
        await asyncio.sleep(0.2)
    pki.mkdir(parents=True, exist_ok=True)
    tmp = key_file.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    os.replace(tmp, key_file)
    tmp = cert_file.with_suffix(".tmp")
    tmp.write_bytes(base64.b64decode(cert_b64))
    os.replace(tmp, cert_file)
    log.info("node %s: client certificate issued (%s)", name, obj_name)
    return str(cert_file), str(key_file)


async def node_certificate_in_child(server: str, token: str, ca_file: str | None, name: str,
                                    data_dir: str | os.PathLike[str], user_agent: str, addresses: list[str],
                                    timeout: float = 60.0) -> tuple[str, str]:
    """node_certificate() with the join token, run by `python -m kybern.node.bootstrap`
    (the token goes over stdin, not the command line). The child first makes or checks
    the node API's serving pair for `addresses` (serving_cert.py), whatever the CSR's fate."""
    from kybern.node import childcall

    args = {"server": server, "token": token, "ca_file": ca_file, "name": name,
            "data_dir": str(data_dir), "user_agent": user_agent, "timeout": timeout, "addresses": addresses}
    try:
        answer = await childcall.call("kybern.node.bootstrap", args, BootstrapError)
    except childcall.ChildFailed as e:
        raise RuntimeError(f"node certificate bootstrap failed: {e}") from None
    return answer["cert_file"], answer["key_file"]


async def _child(args: dict[str, Any]) -> dict[str, Any]:
    from kybern.node import serving_cert

    serving_cert.ensure(args["data_dir"], args["name"], args["addresses"])
    client = Client(args["server"], token=args["token"], ca_file=args["ca_file"], user_agent=args["user_agent"])
    try:
        cert, key = await node_certificate(client, args["name"], args["data_dir"], args["timeout"])
        return {"cert_file": cert, "key_file": key}
    finally:
        await client.close()


if __name__ == "__main__":
    from kybern.node import childcall

    childcall.serve(_child, BootstrapError)
