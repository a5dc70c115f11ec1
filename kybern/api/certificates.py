"""certificates.k8s.io/v1 CertificateSigningRequest (pkg/registry/certificates,
pkg/apis/certificates/validation): the resource, its status and approval
subresources' strategies and its `kubectl get csr` columns. Who may approve or
sign, and who asked, is the apiserver's admission (kybern/apiserver/csr.py);
the csrsigning controller (kybern/controllers/csrsigning.py) issues the
certificates. docs/certificates.md."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from kybern.api import tables
from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy
from kybern.machinery import errors, meta

GROUP = "certificates.k8s.io"
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"

APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
_TRUE_ONLY = (APPROVED, DENIED, FAILED)  # condition types whose status may only be True

VALID_USAGES = sorted([
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
    "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
    "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc"])

_PEM = re.compile(rb"-----BEGIN ([^-\r\n]*)-----\r?\n(.*?)-----END \1-----", re.S)
_DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class CSRError(ValueError):
    pass


def parse_csr(pem: bytes) -> x509.CertificateSigningRequest:
    """certificates.ParseCSR + CheckSignature: the first PEM block must be a
    CERTIFICATE REQUEST whose signature verifies."""
    m = _PEM.search(pem)
    if m is None or m.group(1) != b"CERTIFICATE REQUEST":
        raise CSRError("PEM block type must be CERTIFICATE REQUEST")
    try:
        der = base64.b64decode(b"".join(m.group(2).split()), validate=True)
        csr = x509.load_der_x509_csr(der)
    except (ValueError, binascii.Error) as e:
        raise CSRError(f"x509: malformed certificate request ({e})") from None
    try:
        ok = csr.is_signature_valid
    except Exception:  # an algorithm cryptography cannot check
        ok = False
    if not ok:
        raise CSRError("x509: signature verification failure")
    return csr


def request_bytes(obj: Obj) -> bytes:
    """spec.request, base64 in JSON (format: byte)."""
    raw = (obj.get("spec") or {}).get("request") or ""
    try:
        return base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
    except (binascii.Error, ValueError):
        return b""


def subject(csr: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    """(common name, organizations) as Go's pkix.Name reads them (the last CN)."""
    cns = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (cns[-1] if cns else ""), orgs


def _go_bytes(data: bytes) -> str:
    """How field.Invalid prints a []byte value (%#v)."""
    return "[]byte{" + ", ".join(f"0x{b:x}" for b in data) + "}"


def _conditions(obj: Obj) -> list[Obj]:
    return [c for c in ((obj.get("status") or {}).get("conditions") or []) if isinstance(c, dict)]


def find(obj: Obj, typ: str) -> list[Obj]:
    return [c for c in _conditions(obj) if c.get("type") == typ]


def has_true(obj: Obj, typ: str) -> bool:
    return any(c.get("status") == "True" for c in find(obj, typ))


def _validate_signer_name(name: Any) -> list[Cause]:
    """apivalidation.ValidateSignerName: `<domain>/<path>`, the domain a DNS subdomain."""
    f = "spec.signerName"
    if not name:
        return [errors.required(f)]
    if not isinstance(name, str):
        return []
    domain, slash, path = name.partition("/")
    if not slash or not domain or not path:
        return [errors.cause(f, f'Invalid value: "{name}": must be a fully qualified domain and path of the '
                               "form 'example.com/signer-name'")]
    out: list[Cause] = []
    if len(domain) > 253 or not _DNS1123_SUB.match(domain):
        out.append(errors.cause(f, f'Invalid value: "{domain}": a lowercase RFC 1123 subdomain must consist of '
                                   "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                                   "alphanumeric character (e.g. 'example.com', regex used for validation is "
                                   "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"))
    if len(name) > 571:
        out.append(errors.cause(f, f'Too long: may not be more than 571 bytes', "FieldValueTooLong"))
    return out


def _validate_certificate(pem: bytes) -> str | None:
    if not pem:
        return None
    blocks = list(_PEM.finditer(pem))
    if not blocks:
        return "must contain at least one CERTIFICATE PEM block"
    for m in blocks:
        if m.group(1) != b"CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{m.group(1).decode(errors="replace")}"'
        try:
            x509.load_pem_x509_certificate(m.group(0))
        except ValueError as e:
            return f"x509: malformed certificate ({e})"
    return None


def _cert_bytes(obj: Obj) -> bytes:
    raw = (obj.get("status") or {}).get("certificate") or ""
    try:
        return base64.b64decode(raw) if isinstance(raw, str) else b""
    except (binascii.Error, ValueError):
        return raw.encode() if isinstance(raw, str) else b""


def validate(obj: Obj, old: Obj | None = None) -> list[Cause]:
    """validateCertificateSigningRequest, with upstream's tolerance of what an old
    object already holds (getValidationOptions)."""
    out: list[Cause] = []
    spec = obj.get("spec") or {}
    old_spec = (old or {}).get("spec") or {}
    req = request_bytes(obj)
    try:
        parse_csr(req)
    except CSRError as e:
        out.append(errors.cause("spec.request", f"Invalid value: {_go_bytes(req)}: {e}"))
    usages = spec.get("usages") or []
    if not usages:
        out.append(errors.required("spec.usages"))
    old_usages = old_spec.get("usages") or []
    if not any(u not in VALID_USAGES for u in old_usages):
        supported = ", ".join(f'"{u}"' for u in VALID_USAGES)
        for i, u in enumerate(usages):
            if u not in VALID_USAGES:
                out.append(errors.cause(f"spec.usages[{i}]", f'Unsupported value: "{u}": supported values: '
                                        f"{supported}", "FieldValueNotSupported"))
    if len(set(old_usages)) == len(old_usages):
        seen: set[str] = set()
        for i, u in enumerate(usages):
            if u in seen:
                out.append(errors.cause(f"spec.usages[{i}]", f'Duplicate value: "{u}"', "FieldValueDuplicate"))
            seen.add(u)
    signer = spec.get("signerName")
    if signer == LEGACY_UNKNOWN and old_spec.get("signerName") != LEGACY_UNKNOWN:
        out.append(errors.cause("spec.signerName", f'Invalid value: "{signer}": the legacy signerName is not '
                                "allowed via this API version"))
    else:
        out += _validate_signer_name(signer)
    exp = spec.get("expirationSeconds")
    if isinstance(exp, int) and exp < 600:
        out.append(errors.cause("spec.expirationSeconds", f"Invalid value: {exp}: may not specify a duration "
                                "less than 600 seconds (10 minutes)"))
    out += _validate_conditions(obj, old)
    cert = _cert_bytes(obj)
    if old is None or cert != _cert_bytes(old):
        why = _validate_certificate(cert)
        if why:
            out.append(errors.cause("status.certificate", f'Invalid value: "<certificate data>": {why}'))
    return out


def _validate_conditions(obj: Obj, old: Obj | None) -> list[Cause]:
    out: list[Cause] = []
    olds = _conditions(old) if old else []
    old_types = [c.get("type") for c in olds]
    allow_both = bool(old) and APPROVED in old_types and DENIED in old_types
    allow_dupes = len(set(old_types)) != len(old_types)
    allow_empty = "" in old_types or None in old_types
    seen: set[str] = set()
    approved = denied = False
    for i, c in enumerate(_conditions(obj)):
        f = f"status.conditions[{i}]"
        typ = c.get("type") or ""
        if not typ and not allow_empty:
            out.append(errors.required(f"{f}.type"))
        allowed = ["True"] if typ in _TRUE_ONLY else ["False", "True", "Unknown"]
        status = c.get("status") or ""
        if not status:
            out.append(errors.required(f"{f}.status"))
        elif status not in allowed:
            out.append(errors.cause(f"{f}.status", f'Unsupported value: "{status}": supported values: '
                                    + ", ".join(f'"{a}"' for a in allowed), "FieldValueNotSupported"))
        if not allow_both and typ in (APPROVED, DENIED):
            if (typ == APPROVED and denied) or (typ == DENIED and approved):
                out.append(errors.cause(f"{f}.type", f'Invalid value: "{typ}": Approved and Denied conditions are '
                                        "mutually exclusive"))
            approved, denied = approved or typ == APPROVED, denied or typ == DENIED
        if not allow_dupes:
            if typ in seen:
                out.append(errors.cause(f"{f}.type", f'Duplicate value: "{typ}"', "FieldValueDuplicate"))
            seen.add(typ)
    return out


def validate_update(new: Obj, old: Obj, *, approval: bool = False, certificate: bool = False) -> list[Cause]:
    """validateCertificateSigningRequestUpdate: Approved/Denied/Failed conditions are
    never removed; only the approval subresource adds or changes Approved/Denied,
    only status sets the certificate, and once set it stays."""
    out = validate(new, old)
    for t in (APPROVED, DENIED, FAILED):
        if len(find(new, t)) < len(find(old, t)):
            out.append(errors.cause("status.conditions", f'Forbidden: updates may not remove a condition of type '
                                    f'"{t}"', "FieldValueForbidden"))
    if not approval:
        for t in (APPROVED, DENIED):
            o, n = find(old, t), find(new, t)
            if len(n) > len(o):
                out.append(errors.cause("status.conditions", f'Forbidden: updates may not add a condition of type '
                                        f'"{t}"', "FieldValueForbidden"))
            elif len(n) == len(o) and n != o:
                out.append(errors.cause("status.conditions", f'Forbidden: updates may not modify a condition of '
                                        f'type "{t}"', "FieldValueForbidden"))
    if _cert_bytes(new) != _cert_bytes(old):
        if not certificate:
            out.append(errors.cause("status.certificate", "Forbidden: updates may not set certificate content",
                                    "FieldValueForbidden"))
        elif _cert_bytes(old):
            out.append(errors.cause("status.certificate", "Forbidden: updates may not modify existing certificate "
                                    "content", "FieldValueForbidden"))
    return out


def _populate_timestamps(new: Obj, old: Obj) -> None:
    """populateConditionTimestamps: a condition without times gets now, or the old
    transition time of a condition with the same type and status."""
    now = meta.now()
    for c in _conditions(new):
        if not c.get("lastUpdateTime"):
            c["lastUpdateTime"] = now
        if not c.get("lastTransitionTime"):
            same = next((o.get("lastTransitionTime") for o in _conditions(old)
                         if o.get("type") == c.get("type") and o.get("status") == c.get("status")
                         and o.get("lastTransitionTime")), None)
            c["lastTransitionTime"] = same or now


def _preserve(new: Obj, old: Obj, typ: str) -> None:
    """preserveConditionInstances: /status may not change Approved/Denied ones."""
    conds = _conditions(new)
    ni = [i for i, c in enumerate(conds) if c.get("type") == typ]
    oi = [c for c in _conditions(old) if c.get("type") == typ]
    if len(ni) == len(oi):
        for i, o in zip(ni, oi):
            new["status"]["conditions"][i] = meta.clone_json(o)


class CSRStrategy(Strategy):
    has_status = True
    name_validator = staticmethod(lambda value, field: [])  # "We don't care what you call your certificate requests"
    field_labels = ("spec.signerName",)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)  # the old status
        if "spec" in old:
            new["spec"] = meta.clone_json(old["spec"])  # spec (and who asked) is immutable

    def validate(self, obj: Obj) -> list[Cause]:
        return validate(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        out = super().prepare_for_status_update(new, old)
        if isinstance(out.get("status"), dict) and isinstance(out["status"].get("conditions"), list):
            out["status"] = meta.clone_json(out["status"])
            for t in (APPROVED, DENIED):
                _preserve(out, old, t)
            _populate_timestamps(out, old)
        return out

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_update(new, old, certificate=True)

    def prepare_for_approval_update(self, new: Obj, old: Obj) -> Obj:
        """Only the conditions change through /approval."""
        out = meta.clone_json(old)
        conds = (new.get("status") or {}).get("conditions") if isinstance(new.get("status"), dict) else None
        status = out.setdefault("status", {})
        if conds:
            status["conditions"] = meta.clone_json(conds)
        else:
            status.pop("conditions", None)
        out["metadata"]["resourceVersion"] = (new.get("metadata") or {}).get("resourceVersion")
        _populate_timestamps(out, old)
        return out

    def validate_approval_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_update(new, old, approval=True)


def condition_summary(obj: Obj) -> str:
    """extractCSRStatus: the CONDITION column."""
    types = {c.get("type") for c in _conditions(obj)}
    out = "Denied" if DENIED in types else "Approved" if APPROVED in types else "Pending"
    if FAILED in types:
        out += ",Failed"
    if (obj.get("status") or {}).get("certificate"):
        out += ",Issued"
    return out


def _row(o: Obj) -> list[Any]:
    spec = o.get("spec") or {}
    exp = spec.get("expirationSeconds")
    return [tables._name(o), tables._created(o), spec.get("signerName") or "<none>", spec.get("username") or "",
            tables.human_duration(exp) if isinstance(exp, int) else "<none>", condition_summary(o)]


tables.PRINTERS[(GROUP, "CertificateSigningRequest")] = (
    [("Name", "string", "name", 0), ("Age", "string", "", 0), ("SignerName", "string", "", 0),
     ("Requestor", "string", "", 0), ("RequestedDuration", "string", "", 0), ("Condition", "string", "", 0)], _row)

RESOURCES = [
    ResourceInfo(GROUP, "v1", "CertificateSigningRequest", "certificatesigningrequests", False,
                 "io.k8s.api.certificates.v1.CertificateSigningRequest", short_names=("csr",),
                 subresources=("status", "approval"), strategy=CSRStrategy()),
]
