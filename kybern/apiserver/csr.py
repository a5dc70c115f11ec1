"""CertificateSigningRequest admission and client-certificate authentication.

Admission as kube-apiserver's: the CSR strategy's PrepareForCreate fills
spec.username/uid/groups/extra from the requesting user; CertificateSubjectRestriction
refuses kube-apiserver-client requests for system:masters; CertificateApproval
asks for `approve` on `signers` (the signerName or `<domain>/*`) on every write
to /approval; CertificateSigning asks for `sign` when /status changes the
certificate. The resource itself: kybern/api/certificates.py; docs/certificates.md.
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kybern.api import certificates
from kybern.apiserver import authz, reviews

if TYPE_CHECKING:
    from aiohttp import web

    from kybern.apiserver.server import APIServer
    from kybern.apiserver.store import RESTStore

Obj = dict[str, Any]
RESOURCE = "certificatesigningrequests"


def _requester() -> dict[str, Any] | None:
    """The user of the write being served (None for the apiserver's own writes)."""
    from kybern.apiserver import admission_webhooks

    ctx = admission_webhooks.REQUEST.get()
    if ctx is None:
        return None
    return ctx[0].get("user") or reviews.ADMIN


async def admit_create(server: APIServer, obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    for k in ("username", "uid", "groups", "extra"):
        spec.pop(k, None)  # never what the client sent: who asked
    user = _requester()
    if user is not None:
        if user.get("username"):
            spec["username"] = user["username"]
        if user.get("uid"):
            spec["uid"] = user["uid"]
        if user.get("groups"):
            spec["groups"] = list(user["groups"])
        if user.get("extra"):
            spec["extra"] = {k: list(v) for k, v in user["extra"].items()}
    if spec.get("signerName") == certificates.KUBE_APISERVER_CLIENT:
        try:
            csr = certificates.parse_csr(certificates.request_bytes(obj))
        except certificates.CSRError:
            return  # validation has said so
        if authz.MASTERS in certificates.subject(csr)[1]:
            raise authz.forbidden_error(certificates.GROUP, RESOURCE, obj["metadata"].get("name", ""),
                                        f"use of {certificates.KUBE_APISERVER_CLIENT} signer with "
                                        f"{authz.MASTERS} group is not allowed")


def authorized_for_signer(server: APIServer, user: dict[str, Any], verb: str, signer: str) -> bool:
    """certadmission.IsAuthorizedForSignerName: the signer by name, or its domain's `*`."""
    if authz.MASTERS in (user.get("groups") or ()):
        return True
    for name in (signer, signer.split("/", 1)[0] + "/*"):
        a = authz.Attributes(user, verb, api_group=certificates.GROUP, resource="signers", name=name)
        if server.authorizer.authorize(a)[0]:
            return True
    return False


def install(server: APIServer, store: RESTStore) -> None:
    async def approval(new: Obj, old: Obj) -> None:
        user = _requester()
        signer = (new.get("spec") or {}).get("signerName") or ""
        if user is not None and not authorized_for_signer(server, user, "approve", signer):
            raise authz.forbidden_error(certificates.GROUP, RESOURCE, new["metadata"].get("name", ""),
                                        f'user not permitted to approve requests with signerName "{signer}"')

    async def status(new: Obj, old: Obj) -> None:
        user = _requester()
        if (new.get("status") or {}).get("certificate") == (old.get("status") or {}).get("certificate"):
            return
        signer = (new.get("spec") or {}).get("signerName") or ""
        if user is not None and not authorized_for_signer(server, user, "sign", signer):
            raise authz.forbidden_error(certificates.GROUP, RESOURCE, new["metadata"].get("name", ""),
                                        f'user not permitted to sign requests with signerName "{signer}"')

    store.subresource_admission = {"approval": approval, "status": status}


# -- client certificate authentication ------------------------------------------------
_CACHE: OrderedDict[bytes, dict[str, Any] | None] = OrderedDict()
_CACHE_SIZE = 256


def peer_user(request: web.Request) -> dict[str, Any] | None:
    """The x509 authenticator (CommonNameUserConversion): the TLS layer verified the
    chain against the cluster CA; the user is the subject's CN, the groups its O values.
    One certificate parse per distinct certificate (cached by its DER bytes)."""
    transport = request.transport
    ssl_obj: ssl.SSLObject | None = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_obj is None:
        return None
    der = ssl_obj.getpeercert(binary_form=True)
    if not der:
        return None
    if der in _CACHE:
        _CACHE.move_to_end(der)
        return _CACHE[der]
    user = _user_from(der)
    _CACHE[der] = user
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return user


def _user_from(der: bytes) -> dict[str, Any] | None:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
            return None  # x509: certificate specifies an incompatible key usage
    except x509.ExtensionNotFound:
        pass
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not cns or not cns[-1]:
        return None  # no CN: not this authenticator's user
    groups = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if authz.AUTHENTICATED not in groups:
        groups.append(authz.AUTHENTICATED)
    return {"username": cns[-1], "groups": groups}


async def approval_subresource(server: APIServer, request: web.Request, store: RESTStore, ns: str | None,
                               name: str) -> web.StreamResponse:
    """certificatesigningrequests/<name>/approval (`kubectl certificate approve|deny`)."""
    from kybern.apiserver import subresources

    return await subresources._get_put_patch(server, request, store, ns, name, "approval")
