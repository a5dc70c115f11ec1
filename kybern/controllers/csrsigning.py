"""The CSR signing controller (kube-controller-manager's `csrsigning`,
pkg/controller/certificates/signer): an approved, not failed, not yet issued
CertificateSigningRequest for kubernetes.io/kube-apiserver-client or
kubernetes.io/kube-apiserver-client-kubelet gets a certificate signed by the
cluster CA (the one the apiserver trusts for client certificates) in
status.certificate. A request the signer refuses gets a Failed condition
(SignerValidationFailure). Validity: expirationSeconds, at most
--cluster-signing-duration (1 year), backdated 5 minutes, never past the CA's.
docs/certificates.md."""

from __future__ import annotations

import base64
import datetime as _dt
import logging
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, ed448, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from kybern.api import certificates as capi
from kybern.client.http import Client
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import CERTIFICATESIGNINGREQUESTS
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

CLUSTER_SIGNING_DURATION = _dt.timedelta(days=365)  # --cluster-signing-duration's default (8760h)
BACKDATE = _dt.timedelta(minutes=5)
SHORT = _dt.timedelta(hours=8)  # shorter lifetimes are not shortened by the backdate
SIGNERS = (capi.KUBE_APISERVER_CLIENT, capi.KUBE_APISERVER_CLIENT_KUBELET)

_KEY_USAGES = {"signing": "digital_signature", "digital signature": "digital_signature",
               "content commitment": "content_commitment", "key encipherment": "key_encipherment",
               "key agreement": "key_agreement", "data encipherment": "data_encipherment",
               "cert sign": "key_cert_sign", "crl sign": "crl_sign", "encipher only": "encipher_only",
               "decipher only": "decipher_only"}
_EXT_USAGES = {"any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE, "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
               "client auth": ExtendedKeyUsageOID.CLIENT_AUTH, "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
               "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
               "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
               "ipsec end system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
               "ipsec tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
               "ipsec user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
               "timestamping": ExtendedKeyUsageOID.TIME_STAMPING, "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
               "microsoft sgc": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
               "netscape sgc": ObjectIdentifier("2.16.840.1.113730.4.1")}


class SignerError(ValueError):
    pass


def _client_usages(usages: list[str]) -> None:
    """validAPIServerClientUsages."""
    has_client_auth = False
    for u in usages:
        if u == "client auth":
            has_client_auth = True
        elif u not in ("digital signature", "key encipherment"):  # optional
            raise SignerError(f"invalid usage for client certificate: {u}")
    if not has_client_auth:
        raise SignerError("missing required usage for client certificate: client auth")


def kubelet_client_csr(req: x509.CertificateSigningRequest, usages: list[str]) -> None:
    """capihelper.ValidateKubeletClientCSR."""
    cn, orgs = capi.subject(req)
    if orgs != ["system:nodes"]:
        raise SignerError("subject organization is not system:nodes")
    try:
        san = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for typ, what in ((x509.DNSName, "DNS"), (x509.RFC822Name, "Email"), (x509.IPAddress, "IP"),
                          (x509.UniformResourceIdentifier, "URI")):
            if san.get_values_for_type(typ):
                raise SignerError(f"{what} subjectAltNames are not allowed")
    if not cn.startswith("system:node:"):
        raise SignerError("subject common name does not begin with system:node:")
    got = set(usages)
    if got not in ({"digital signature", "key encipherment", "client auth"}, {"digital signature", "client auth"}):
        raise SignerError("usages did not match [client auth digital signature key encipherment]")


def check(obj: dict[str, Any], req: x509.CertificateSigningRequest) -> bool:
    """isRequestForSignerFn: whether this signer issues it; SignerError if it refuses."""
    spec = obj.get("spec") or {}
    usages = list(spec.get("usages") or [])
    signer = spec.get("signerName")
    if signer == capi.KUBE_APISERVER_CLIENT:
        _client_usages(usages)
        return True
    if signer == capi.KUBE_APISERVER_CLIENT_KUBELET:
        kubelet_client_csr(req, usages)
        return True
    return False


def needs_signing(obj: dict[str, Any]) -> bool:
    return (capi.has_true(obj, capi.APPROVED) and not capi.has_true(obj, capi.DENIED)
            and not capi.has_true(obj, capi.FAILED) and not (obj.get("status") or {}).get("certificate")
            and (obj.get("spec") or {}).get("signerName") in SIGNERS)


def duration(obj: dict[str, Any], max_ttl: _dt.timedelta = CLUSTER_SIGNING_DURATION) -> _dt.timedelta:
    """The signer's TTL: expirationSeconds when set and shorter than the maximum."""
    exp = (obj.get("spec") or {}).get("expirationSeconds")
    if isinstance(exp, int) and exp > 0:
        return min(max_ttl, _dt.timedelta(seconds=exp))
    return max_ttl


def sign(req: x509.CertificateSigningRequest, usages: list[str], ttl: _dt.timedelta, ca: x509.Certificate,
         ca_key: Any, now: _dt.datetime | None = None) -> x509.Certificate:
    """authority.Sign under PermissiveSigningPolicy: the request's subject, SANs and key;
    the usages asked for; not a CA; backdated, capped at the CA's own expiry."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    not_after = now + ttl if ttl < SHORT else now + ttl - BACKDATE
    ca_after = ca.not_valid_after_utc
    not_after = min(not_after, ca_after)
    pub = req.public_key()
    if not isinstance(pub, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey,
                            ed448.Ed448PublicKey)):
        raise SignerError("unsupported public key type")
    b = (x509.CertificateBuilder().subject_name(req.subject).issuer_name(ca.subject).public_key(pub)
         .serial_number(x509.random_serial_number()).not_valid_before(now - BACKDATE).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    flags = {v: False for v in _KEY_USAGES.values()}
    for u in usages:
        if u in _KEY_USAGES:
            flags[_KEY_USAGES[u]] = True
    if any(flags.values()):
        if not flags["key_agreement"]:
            flags["encipher_only"] = flags["decipher_only"] = False  # only meaningful with key agreement
        b = b.add_extension(x509.KeyUsage(**flags), critical=True)
    ext = []
    for u in usages:
        oid = _EXT_USAGES.get(u)
        if oid is not None and oid not in ext:
            ext.append(oid)
    if ext:
        b = b.add_extension(x509.ExtendedKeyUsage(ext), critical=False)
    try:
        san = req.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        b = b.add_extension(san.value, critical=san.critical)
    except x509.ExtensionNotFound:
        pass
    return b.sign(ca_key, hashes.SHA256())


class CSRSigningController:
    name = "csrsigning"

    def __init__(self, client: Client, informers: InformerFactory) -> None:
        self.client = client
        self.ca_file = Path(client.ca_file) if client.ca_file else None
        self.ca: x509.Certificate | None = None
        self.ca_key: Any = None
        self.csrs = informers.informer(CERTIFICATESIGNINGREQUESTS)
        self.queue = WorkQueue(self.name, base_delay=0.5, max_delay=30)
        self.csrs.add_handler(self._on_csr)

    def _on_csr(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ != "DELETED" and needs_signing(new):
            self.queue.add(new["metadata"]["name"])

    def _load_ca(self) -> bool:
        key_file = self.ca_file.with_name("ca.key") if self.ca_file else None
        if self.ca_file is None or key_file is None or not key_file.exists():
            return False
        self.ca = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        self.ca_key = serialization.load_pem_private_key(key_file.read_bytes(), None)
        return True

    async def run(self, workers: int = 1) -> None:
        if not self._load_ca():
            log.info("%s: no cluster CA key next to the CA file: not signing", self.name)
            return
        await self.csrs.wait_synced()
        await run_workers(self.queue, self.reconcile, workers)

    async def reconcile(self, name: str) -> None:
        obj = self.csrs.get(name)
        if obj is None or not needs_signing(obj):
            return
        obj = meta.clone_json(obj)
        status = obj.setdefault("status", {})
        try:
            req = capi.parse_csr(capi.request_bytes(obj))
        except capi.CSRError as e:
            raise RuntimeError(f"unable to parse csr {name!r}: {e}") from None  # retried, as upstream
        try:
            if not check(obj, req):
                return
            assert self.ca is not None
            cert = sign(req, list(obj["spec"].get("usages") or []), duration(obj), self.ca, self.ca_key)
            status["certificate"] = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()
        except SignerError as e:
            status.setdefault("conditions", []).append({
                "type": capi.FAILED, "status": "True", "reason": "SignerValidationFailure", "message": str(e),
                "lastUpdateTime": meta.now()})
        try:
            await self.client.update(CERTIFICATESIGNINGREQUESTS, obj, subresource="status")
        except errors.StatusError as e:
            if e.code == 404:
                return
            raise  # a conflict: again from the informer's newer copy
