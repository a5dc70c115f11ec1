"""The CSR signer (kybern/controllers/csrsigning.py) and the CertificateSigningRequest
strategy (kybern/api/certificates.py): what is signed, for how long, what is refused,
and which writes may change approval and certificate."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kybern.api import certificates as capi
from kybern.controllers import csrsigning

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _ca(days: int = 3650) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kybern-ca")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
            .serial_number(1).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(k, hashes.SHA256()))
    return cert, k


def _csr(cn: str = "myuser", orgs: tuple[str, ...] = (), dns: tuple[str, ...] = (),
         ips: tuple[str, ...] = ()) -> x509.CertificateSigningRequest:
    k = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] + [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o)
                                                            for o in orgs]
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if dns or ips:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]), critical=False)
    return b.sign(k, hashes.SHA256())


def _obj(req: x509.CertificateSigningRequest, usages: list[str], signer: str = capi.KUBE_APISERVER_CLIENT,
         exp: int | None = None, conditions: list[dict] | None = None) -> dict:
    spec = {"request": base64.b64encode(req.public_bytes(serialization.Encoding.PEM)).decode(),
            "signerName": signer, "usages": usages}
    if exp is not None:
        spec["expirationSeconds"] = exp
    o = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
         "metadata": {"name": "x", "resourceVersion": "1"}, "spec": spec}
    if conditions is not None:
        o["status"] = {"conditions": conditions}
    return o


APPROVED = {"type": "Approved", "status": "True", "reason": "R", "message": "m"}


def test_client_certificate_carries_subject_usages_and_requested_lifetime():
    ca, key = _ca()
    req = _csr("myuser", ("dev", "ops"))
    obj = _obj(req, ["digital signature", "key encipherment", "client auth"], exp=86400)
    assert csrsigning.check(obj, req) is True
    cert = csrsigning.sign(req, obj["spec"]["usages"], csrsigning.duration(obj), ca, key, now=NOW)
    assert cert.subject == req.subject and cert.issuer == ca.subject
    assert cert.public_key().public_numbers() == req.public_key().public_numbers()
    cert.verify_directly_issued_by(ca)
    # 24h >= 8h: backdated 5 minutes at both ends, so the lifetime is what was asked
    assert cert.not_valid_before_utc == NOW - dt.timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(hours=24) - dt.timedelta(minutes=5)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment and not ku.value.key_cert_sign
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_lifetime_short_default_and_capped():
    ca, key = _ca(days=30)
    req = _csr()
    short = _obj(req, ["client auth"], exp=600)
    c = csrsigning.sign(req, ["client auth"], csrsigning.duration(short), ca, key, now=NOW)
    assert c.not_valid_after_utc == NOW + dt.timedelta(seconds=600)  # under 8h: not shortened by the backdate
    assert csrsigning.duration(_obj(req, ["client auth"])) == dt.timedelta(days=365)  # --cluster-signing-duration
    assert csrsigning.duration(_obj(req, ["client auth"], exp=10 * 365 * 86400)) == dt.timedelta(days=365)
    c = csrsigning.sign(req, ["client auth"], csrsigning.duration(_obj(req, ["client auth"])), ca, key, now=NOW)
    assert c.not_valid_after_utc == ca.not_valid_after_utc  # never past the CA


@pytest.mark.parametrize("usages,why", [
    (["server auth"], "invalid usage for client certificate: server auth"),
    (["client auth", "cert sign"], "invalid usage for client certificate: cert sign"),
    (["digital signature"], "missing required usage for client certificate: client auth"),
])
def test_kube_apiserver_client_usages(usages, why):
    req = _csr()
    with pytest.raises(csrsigning.SignerError, match=f"^{why}$"):
        csrsigning.check(_obj(req, usages), req)


@pytest.mark.parametrize("cn,orgs,dns,usages,why", [
    ("system:node:n1", ("system:nodes",), (), ["digital signature", "client auth"], None),
    ("system:node:n1", ("system:nodes",), (), ["digital signature", "key encipherment", "client auth"], None),
    ("system:node:n1", ("other",), (), ["digital signature", "client auth"], "subject organization is not system:nodes"),
    ("n1", ("system:nodes",), (), ["digital signature", "client auth"],
     "subject common name does not begin with system:node:"),
    ("system:node:n1", ("system:nodes",), ("n1.example",), ["digital signature", "client auth"],
     "DNS subjectAltNames are not allowed"),
    ("system:node:n1", ("system:nodes",), (), ["client auth"],
     r"usages did not match \[client auth digital signature key encipherment\]"),
])
def test_kubelet_client_signer(cn, orgs, dns, usages, why):
    req = _csr(cn, orgs, dns)
    obj = _obj(req, usages, signer=capi.KUBE_APISERVER_CLIENT_KUBELET)
    if why is None:
        assert csrsigning.check(obj, req) is True
    else:
        with pytest.raises(csrsigning.SignerError, match=f"^{why}$"):
            csrsigning.check(obj, req)


def test_only_approved_unissued_requests_of_its_signers_are_signed():
    req = _csr()
    assert not csrsigning.needs_signing(_obj(req, ["client auth"]))
    assert csrsigning.needs_signing(_obj(req, ["client auth"], conditions=[APPROVED]))
    failed = {"type": "Failed", "status": "True"}
    assert not csrsigning.needs_signing(_obj(req, ["client auth"], conditions=[APPROVED, failed]))
    assert not csrsigning.needs_signing(_obj(req, ["client auth"], signer="example.com/x", conditions=[APPROVED]))
    issued = _obj(req, ["client auth"], conditions=[APPROVED])
    issued["status"]["certificate"] = "eA=="
    assert not csrsigning.needs_signing(issued)
    assert csrsigning.check(_obj(req, ["server auth"], signer="example.com/x"), req) is False


def _fields(causes):
    return [(c["field"], c["message"]) for c in causes]


def test_validation_of_a_new_request():
    req = _csr()
    assert capi.validate(_obj(req, ["client auth"])) == []
    bad = _obj(req, ["client auth", "client auth", "nope"], signer="noslash", exp=599)
    bad["spec"]["request"] = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n").decode()
    got = _fields(capi.validate(bad))
    assert got[0][0] == "spec.request" and got[0][1].endswith(": PEM block type must be CERTIFICATE REQUEST")
    assert got[1][0] == "spec.usages[2]" and got[1][1].startswith('Unsupported value: "nope": supported values: "any"')
    assert got[2:] == [("spec.usages[1]", 'Duplicate value: "client auth"'),
                       ("spec.signerName", "Invalid value: \"noslash\": must be a fully qualified domain and path of "
                                           "the form 'example.com/signer-name'"),
                       ("spec.expirationSeconds", "Invalid value: 599: may not specify a duration less than 600 "
                                                  "seconds (10 minutes)")]
    legacy = _obj(req, ["client auth"], signer=capi.LEGACY_UNKNOWN)
    assert _fields(capi.validate(legacy)) == [("spec.signerName", 'Invalid value: "kubernetes.io/legacy-unknown": '
                                                                  "the legacy signerName is not allowed via this API "
                                                                  "version")]
    assert _fields(capi.validate(_obj(req, []))) == [("spec.usages", "Required value")]
    both = _obj(req, ["client auth"], conditions=[APPROVED, {"type": "Denied", "status": "True"}])
    assert _fields(capi.validate(both)) == [("status.conditions[1].type", 'Invalid value: "Denied": Approved and '
                                                                          "Denied conditions are mutually exclusive")]


def test_which_write_may_change_what():
    s = capi.CSRStrategy()
    req = _csr()
    old = _obj(req, ["client auth"])
    old["spec"]["username"] = "alice"
    # the main resource keeps spec (who asked) and status
    new = _obj(_csr("other"), ["client auth"], conditions=[APPROVED])
    s.prepare_for_update(new, old)
    assert new["spec"] == old["spec"] and "status" not in new
    # /status may not approve; Approved conditions it sends are refused
    st = s.prepare_for_status_update(_obj(req, ["client auth"], conditions=[dict(APPROVED)]), old)
    assert _fields(s.validate_status_update(st, old)) == [
        ("status.conditions", 'Forbidden: updates may not add a condition of type "Approved"')]
    # /approval may, and only conditions change (timestamps filled)
    body = _obj(_csr("other"), ["server auth"], conditions=[dict(APPROVED)])
    ap = s.prepare_for_approval_update(body, old)
    assert ap["spec"] == old["spec"] and ap["status"]["conditions"][0]["type"] == "Approved"
    assert ap["status"]["conditions"][0]["lastUpdateTime"] and ap["status"]["conditions"][0]["lastTransitionTime"]
    assert s.validate_approval_update(ap, old) == []
    # an approved request: the certificate may be set once, through /status only, and not removed
    approved = ap
    cert = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n" + base64.b64encode(_ca()[0].public_bytes(
        serialization.Encoding.DER)) + b"\n-----END CERTIFICATE-----\n").decode()
    issued = {**approved, "status": {**approved["status"], "certificate": cert}}
    st = s.prepare_for_status_update(issued, approved)
    assert s.validate_status_update(st, approved) == []
    assert _fields(s.validate_approval_update(issued, approved)) == [
        ("status.certificate", "Forbidden: updates may not set certificate content")]
    other = {**issued, "status": {**issued["status"], "certificate": base64.b64encode(b"x").decode()}}
    assert ("status.certificate", "Forbidden: updates may not modify existing certificate content") in \
        _fields(s.validate_status_update(other, issued))
    removed = {**approved, "status": {}}
    assert ("status.conditions", 'Forbidden: updates may not remove a condition of type "Approved"') in \
        _fields(s.validate_approval_update(removed, approved))


def test_condition_column():
    req = _csr()
    assert capi.condition_summary(_obj(req, ["client auth"])) == "Pending"
    o = _obj(req, ["client auth"], conditions=[APPROVED])
    assert capi.condition_summary(o) == "Approved"
    o["status"]["certificate"] = "eA=="
    assert capi.condition_summary(o) == "Approved,Issued"
    o["status"]["conditions"].append({"type": "Failed", "status": "True"})
    assert capi.condition_summary(o) == "Approved,Failed,Issued"
    assert capi.condition_summary(_obj(req, ["client auth"], conditions=[{"type": "Denied", "status": "True"}])) == \
        "Denied"


def test_client_certificate_user():
    """The x509 authenticator: CN the user, O the groups, plus system:authenticated;
    a certificate not for client auth, or without a CN, is nobody."""
    from kybern.apiserver import csr as csr_admission

    ca, key = _ca()
    req = _csr("myuser", ("dev", "ops"))
    der = csrsigning.sign(req, ["client auth"], dt.timedelta(days=1), ca, key).public_bytes(
        serialization.Encoding.DER)
    assert csr_admission._user_from(der) == {"username": "myuser",
                                             "groups": ["dev", "ops", "system:authenticated"]}
    server_cert = csrsigning.sign(req, ["server auth"], dt.timedelta(days=1), ca, key)
    assert csr_admission._user_from(server_cert.public_bytes(serialization.Encoding.DER)) is None
    no_cn = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dev")])).sign(ec.generate_private_key(ec.SECP256R1()),
                                                                     hashes.SHA256())
    cert = csrsigning.sign(no_cn, ["client auth"], dt.timedelta(days=1), ca, key)
    assert csr_admission._user_from(cert.public_bytes(serialization.Encoding.DER)) is None
