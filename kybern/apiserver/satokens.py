"""Service account tokens: the TokenRequest API (POST serviceaccounts/<name>/token,
what `kubectl create token` calls) and authentication of the tokens it issues.

Tokens are JWTs with upstream's claims (iss/aud `https://kubernetes.default.svc.cluster.local`,
`sub` system:serviceaccount:<ns>:<name>, the `kubernetes.io` claim naming the
namespace and service account with its uid, exp/iat/nbf, jti), signed ES256 (what
kube-apiserver does with an EC `--service-account-signing-key-file`) with a P-256
key derived from the cluster's own tokens, so every apiserver process of a cluster
(and a restarted one) signs alike and nothing outside can mint one; the public key
is served for outside verifiers as upstream's service account issuer discovery
(`/.well-known/openid-configuration`, `/openid/v1/jwks`). Tokens an older kybern
signed with HMAC-SHA256 under the same secret are still accepted. A token stops working when it expires or its service account is deleted
(or recreated with another uid), as upstream's legacy checks do; a token bound to a
Pod, Secret or Node (`kubectl create token --bound-object-kind`, a pod's projected
token) names it in its claims and stops working once that object is gone. A token
authenticates API requests only when one of its audiences is the API server's
(API_AUDIENCES); a TokenReview (reviews.py) may ask for others."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from kybern.apiserver import noderestriction, rest
from kybern.apiserver.store import RESTStore, object_key
from kybern.machinery import errors

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"  # the tokens controller's, in Secrets
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME = "kubernetes.io/service-account.name"
SA_UID = "kubernetes.io/service-account.uid"
LAST_USED = "kubernetes.io/legacy-token-last-used"
INVALID_SINCE = "kubernetes.io/legacy-token-invalid-since"
TRACKING_CONFIGMAP = "kube-apiserver-legacy-service-account-token-tracking"
DEFAULT_EXPIRATION = 3600
WARN_ONLY_EXPIRATION = 3607  # what the kubelet asks for a pod's kube-api-access token
EXTENDED_EXPIRATION = 365 * 24 * 3600
MIN_EXPIRATION = 600
# kube-apiserver's --api-audiences, which default to the issuer: a token must be for one of them
API_AUDIENCES = (ISSUER,)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_from_tokens(tokens: set[str]) -> bytes:
    return hashlib.sha256(b"kybern service account tokens\0" + "\0".join(sorted(tokens)).encode()).digest()


_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_ECDSA = ec.ECDSA(hashes.SHA256())
_VERIFIED_MAX = 10000  # signatures already checked (upstream caches validated tokens too)


class TokenIssuer:
    def __init__(self, key: bytes) -> None:
        self.key = key  # HMAC key of tokens issued before ES256
        seed = int.from_bytes(hashlib.sha256(b"kybern service account signing key\0" + key).digest(), "big")
        self.signing_key = ec.derive_private_key(seed % (_P256_ORDER - 1) + 1, ec.SECP256R1())
        self.public_key = self.signing_key.public_key()
        der = self.public_key.public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = _b64(hashlib.sha256(der).digest())  # upstream's keyIDFromPublicKey
        self._verified: dict[str, dict[str, Any]] = {}

    def _sign(self, head_body: str) -> str:
        r, s_ = utils.decode_dss_signature(self.signing_key.sign(head_body.encode(), _ECDSA))
        return _b64(r.to_bytes(32, "big") + s_.to_bytes(32, "big"))  # JWS: raw R || S

    def _jwt(self, claims: dict[str, Any]) -> str:
        head = _b64(orjson.dumps({"alg": "ES256", "kid": self.kid}))
        body = _b64(orjson.dumps(claims))
        return f"{head}.{body}.{self._sign(f'{head}.{body}')}"

    def jwks(self) -> dict[str, Any]:
        nums = self.public_key.public_numbers()
        return {"keys": [{"use": "sig", "kty": "EC", "kid": self.kid, "crv": "P-256", "alg": "ES256",
                          "x": _b64(nums.x.to_bytes(32, "big")), "y": _b64(nums.y.to_bytes(32, "big"))}]}

    def signed_claims(self, parts: list[str]) -> Any:
        """The decoded claims when the signature is ours (ES256, or an older HMAC one)."""
        token = ".".join(parts)
        known = self._verified.get(token)
        if known is not None:
            return known
        try:
            head = orjson.loads(_unb64(parts[0]))
            alg = head.get("alg") if isinstance(head, dict) else None
            if alg == "ES256":
                sig = _unb64(parts[2])
                if len(sig) != 64:
                    return None
                der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
                self.public_key.verify(der, f"{parts[0]}.{parts[1]}".encode(), _ECDSA)
            elif alg == "HS256":
                want = _b64(hmac.new(self.key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
                if not hmac.compare_digest(want, parts[2]):
                    return None
            else:
                return None
            claims = orjson.loads(_unb64(parts[1]))
        except (ValueError, orjson.JSONDecodeError, InvalidSignature):
            return None
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def issue(self, namespace: str, name: str, uid: str, audiences: list[str], seconds: int,
              bound: dict[str, Any] | None = None, extend: bool = False) -> tuple[str, int]:
        """`bound`: the `pod`/`secret`/`node` claims ({"name", "uid"}) of a bound token;
        `extend`: the JWT lives a year and says `warnafter` the requested time (upstream's
        --service-account-extend-token-expiration, on by default). Returns the token and
        the requested expiry (the TokenRequest's expirationTimestamp)."""
        now = int(time.time())
        exp = now + seconds
        k8s = {"namespace": namespace, **(bound or {}), "serviceaccount": {"name": name, "uid": uid}}
        if extend:
            k8s["warnafter"] = exp
        claims = {"aud": audiences, "exp": now + EXTENDED_EXPIRATION if extend else exp, "iat": now, "iss": ISSUER,
                  "jti": str(uuid.uuid4()),
                  "kubernetes.io": dict(sorted(k8s.items())),
                  "nbf": now, "sub": f"system:serviceaccount:{namespace}:{name}"}
        return self._jwt(claims), exp

    def issue_legacy(self, namespace: str, name: str, uid: str, secret: str) -> str:
        """A token for a `kubernetes.io/service-account-token` Secret: upstream's legacy
        claims, no expiry; it works while the Secret holds it and the account exists."""
        p = "kubernetes.io/serviceaccount/"
        claims = {"iss": LEGACY_ISSUER, f"{p}namespace": namespace, f"{p}secret.name": secret,
                  f"{p}service-account.name": name, f"{p}service-account.uid": uid,
                  "sub": f"system:serviceaccount:{namespace}:{name}"}
        return self._jwt(claims)


def user_info(claims: dict[str, Any]) -> dict[str, Any]:
    """What authentication makes of a service account token (`kubectl auth whoami`)."""
    k = claims.get("kubernetes.io") or {}
    ns, sa = k.get("namespace", ""), (k.get("serviceaccount") or {})
    extra = {"authentication.kubernetes.io/credential-id": [f"JTI={claims.get('jti', '')}"]}
    for kind in ("node", "pod"):  # a bound token's pod (and its node), as upstream's ServiceAccountInfo
        if isinstance(k.get(kind), dict):
            extra[f"authentication.kubernetes.io/{kind}-name"] = [str(k[kind].get("name", ""))]
            extra[f"authentication.kubernetes.io/{kind}-uid"] = [str(k[kind].get("uid", ""))]
    return {"username": f"system:serviceaccount:{ns}:{sa.get('name', '')}", "uid": sa.get("uid", ""),
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
            "extra": dict(sorted(extra.items()))}


async def authenticate(server: APIServer, token: str) -> dict[str, Any] | None:
    """The user a service account token stands for on an API request, or None: bad
    signature, not for the API server's audiences, expired, or its service account
    (or bound object) gone or recreated with another uid."""
    return (await review(server, token))[0]


def _go_quote(values: list[str]) -> str:
    """Go's %q of a []string, as upstream's messages print audiences: ["a" "b"]."""
    return "[" + " ".join(orjson.dumps(v).decode() for v in values) + "]"


async def review(server: APIServer, token: str,
                 audiences: list[str] | None = None) -> tuple[dict[str, Any] | None, list[str], str]:
    """Upstream's service account JWT authenticator and its validator, for a request
    (audiences None: the API server's own) or a TokenReview's spec.audiences: (user,
    the token's audiences among those asked for, "") when it authenticates; (None, [],
    why) when this issuer signed it but it is not valid now; (None, [], "") when it is
    not a token this issuer signed."""
    parts = token.split(".")
    claims = server.sa_tokens.signed_claims(parts) if len(parts) == 3 else None
    if not isinstance(claims, dict) or claims.get("iss") not in (ISSUER, LEGACY_ISSUER):
        return None, [], ""
    aud = claims.get("aud")
    token_auds = [aud] if isinstance(aud, str) else [str(a) for a in aud] if isinstance(aud, list) else []
    token_auds = token_auds or list(API_AUDIENCES)  # legacy tokens name none: the API server's
    wanted = list(audiences or API_AUDIENCES)
    auds = [a for a in wanted if a in token_auds]  # upstream's Audiences.Intersect: in request order
    if not auds:
        return None, [], f"token audiences {_go_quote(token_auds)} is invalid for the target audiences " \
                         f"{_go_quote(wanted)}"
    if claims.get("iss") == LEGACY_ISSUER:
        user, why = await _authenticate_legacy(server, token, claims)
        return user, auds if user else [], why
    now = time.time()
    if now >= claims.get("exp", 0):
        return None, [], "service account token has expired"
    if now < claims.get("nbf", 0) - 60:
        return None, [], "service account token is not valid yet"
    k = claims.get("kubernetes.io") or {}
    ns, sa = k.get("namespace"), (k.get("serviceaccount") or {})
    why = await _check(server, "serviceaccounts", ns, sa)
    if why is not None:
        return None, [], why
    # a bound token dies with its object (gone, or recreated with another uid), as
    # upstream's validator: "the token will expire when the object is deleted"
    kinds = [("secret", "secrets", ns), ("pod", "pods", ns)]
    if not isinstance(k.get("pod"), dict):  # a pod-bound token names its node for information only
        kinds.append(("node", "nodes", None))
    for kind, resource, where in kinds:
        ref = k.get(kind)
        if isinstance(ref, dict):
            why = await _check(server, resource, where, ref)
            if why is not None:
                return None, [], why
    return user_info(claims), auds, ""


async def _check(server: APIServer, resource: str, ns: str | None, ref: dict[str, Any]) -> str | None:
    """None when the object a token's claim names ({"name", "uid"}) exists with that uid,
    else upstream's validator's message. From the watch cache's stored bytes: no decode
    on the authentication path."""
    store = server.store("", "v1", resource)
    name = str(ref.get("name"))
    entry = await store.cache.get(store.prefix, object_key(store.info, ns, name))
    if entry is not None and f'"uid":"{ref.get("uid")}"'.encode() in entry.raw:
        return None
    if entry is None:  # the account's lister error as is; a bound object's is not shown
        return f'serviceaccount "{name}" not found' if resource == "serviceaccounts" else \
            "service account token has been invalidated"
    uid = (entry.decode().get("metadata") or {}).get("uid", "")
    if resource == "serviceaccounts":
        return f"service account UID ({uid}) does not match claim ({ref.get('uid')})"
    kind = resource[:-1]
    return f"{kind} UID ({uid}) does not match service account {kind} ref claim ({ref.get('uid')})"


async def _bound_claims(server: APIServer, ns: str, account: str, ref: Any) -> dict[str, Any]:
    """The claims binding a TokenRequest's token to its boundObjectRef (a Pod, Secret or
    Node that must exist; a Pod's node is named too), refused as upstream's TokenREST."""
    if not isinstance(ref, dict):
        raise errors.bad_request("the object provided is not a valid TokenRequest")
    version, kind, name = str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""), str(ref.get("name") or "")
    group, _, ver = version.rpartition("/")
    resource = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}.get(kind) if group == "" else None
    if resource is None:
        raise errors.bad_request(f"cannot bind token to object of type {group}/{ver}, Kind={kind}")
    obj = await server.store("", "v1", resource).get(None if kind == "Node" else ns, name)
    uid = obj["metadata"].get("uid", "")
    out = {kind.lower(): {"name": name, "uid": uid}}
    if kind == "Pod":
        spec = obj.get("spec") or {}
        if spec.get("serviceAccountName", "default") != account:
            raise errors.bad_request(f'cannot bind token for serviceaccount "{account}" to pod running with '
                                     "different serviceaccount name.")
        if spec.get("nodeName"):
            try:
                node = await server.store("", "v1", "nodes").get(None, spec["nodeName"])
                out["node"] = {"name": spec["nodeName"], "uid": node["metadata"].get("uid", "")}
            except errors.StatusError as e:
                if e.code != 404:  # a node not (yet) there is left out, as upstream
                    raise
    if ref.get("uid") and ref["uid"] != uid:
        raise errors.conflict("", kind, name, f"the UID in the bound object reference ({ref['uid']}) does not match "
                              "the UID in record. The object might have been deleted and then recreated")
    return out


async def token(server: APIServer, request: web.Request, store: RESTStore, ns: str | None,
                name: str) -> web.StreamResponse:
    """POST serviceaccounts/<name>/token (authentication.k8s.io/v1 TokenRequest)."""
    if request.method != "POST":
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    body = await rest.read_body(request)
    if not isinstance(body, dict):
        raise errors.bad_request("the object provided is not a valid TokenRequest")
    sa = await store.get(ns, name)
    spec = dict(body.get("spec") or {})
    await noderestriction.token_request(server, request, ns or "default", name, spec)
    seconds = spec.get("expirationSeconds")
    seconds = DEFAULT_EXPIRATION if seconds is None else seconds
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < MIN_EXPIRATION:
        raise errors.invalid("authentication.k8s.io", "TokenRequest", name, [errors.cause(
            "spec.expirationSeconds", f"Invalid value: {seconds}: may not specify a duration less than 10 minutes")])
    if seconds > 2**32:
        raise errors.invalid("authentication.k8s.io", "TokenRequest", name, [errors.cause(
            "spec.expirationSeconds", f"Invalid value: {seconds}: may not specify a duration larger than 2^32 "
            "seconds")])
    audiences = list(spec.get("audiences") or []) or [ISSUER]
    bound = None
    if spec.get("boundObjectRef") is not None:
        bound = await _bound_claims(server, ns or "default", name, spec["boundObjectRef"])
    # a pod's default token (3607 s, for the API server) is made to last a year, warning
    # after the hour, so clients that do not reread the file keep working, as upstream
    extend = bool(bound and "pod" in bound) and seconds == WARN_ONLY_EXPIRATION and set(audiences) <= {ISSUER}
    tok, exp = server.sa_tokens.issue(ns or "default", name, sa["metadata"].get("uid", ""), audiences, seconds,
                                      bound, extend)
    out = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
           # echoed, not stored: no system metadata, as upstream's TokenREST
           "metadata": {"name": name, "namespace": ns, "creationTimestamp": None},
           "spec": {"audiences": audiences, "expirationSeconds": seconds,
                    "boundObjectRef": spec.get("boundObjectRef")},
           "status": {"token": tok,
                      "expirationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))}}
    return rest.json_response(out, 201)


async def _authenticate_legacy(server: APIServer, token: str,
                               claims: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """A Secret's token: its Secret must still hold it and its account exist (same
    uid), in the order and with the messages of upstream's legacy validator."""
    p = "kubernetes.io/serviceaccount/"
    ns, name, uid = claims.get(f"{p}namespace"), claims.get(f"{p}service-account.name"), \
        claims.get(f"{p}service-account.uid")
    secrets = server.store("", "v1", "secrets")
    secret_name = str(claims.get(f"{p}secret.name"))
    entry = await secrets.cache.get(secrets.prefix, object_key(secrets.info, ns, secret_name))
    if entry is None:
        return None, "Token has been invalidated"
    if _b64std(token).encode() not in entry.raw:
        return None, "Token does not match server's copy"
    secret_raw = entry.raw
    why = await _check(server, "serviceaccounts", ns, {"name": name, "uid": uid})
    if why is not None:
        return None, why.replace("service account UID", "ServiceAccount UID")
    if INVALID_SINCE.encode() in secret_raw or LAST_USED.encode() + b'":"' + _today().encode() not in secret_raw:
        labels = (orjson.loads(secret_raw).get("metadata") or {}).get("labels") or {}
        if labels.get(INVALID_SINCE):  # marked by the cleaner (or by hand): refused until the label goes
            return None, (f"the token in secret {ns}/{secret_name} for service account {ns}/{name} has been "
                          f"marked invalid. Use tokens from the TokenRequest API or manually created "
                          f"secret-based tokens, or remove the '{INVALID_SINCE}' label from the secret to "
                          "enable it")
        if labels.get(LAST_USED) != _today():  # upstream's legacy token tracking, once a day
            await _mark_used(secrets, ns, secret_name)
    return {"username": f"system:serviceaccount:{ns}:{name}", "uid": uid,
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]}, ""


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


async def _mark_used(secrets: RESTStore, ns: str, name: str) -> None:
    def make(cur: dict[str, Any] | None) -> dict[str, Any]:
        if cur is None:
            raise errors.not_found("", "secrets", name)
        cur.setdefault("metadata", {}).setdefault("labels", {})[LAST_USED] = _today()
        return cur
    try:
        await secrets.update(ns, name, make)
    except errors.StatusError:
        pass  # as upstream, a failed label update does not fail the request


def _b64std(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def fill_token_secret(server: APIServer, secret: dict[str, Any]) -> None:
    """The tokens controller's work on a new `kubernetes.io/service-account-token` Secret,
    done as it is created: the account's uid annotation and `token`, `ca.crt` (from the
    namespace's kube-root-ca.crt) and `namespace` data. An account that does not exist
    leaves the Secret as it is."""
    if secret.get("type") != SA_TOKEN_TYPE:
        return
    m = secret.setdefault("metadata", {})
    ns, name = m.get("namespace") or "default", (m.get("annotations") or {}).get(SA_NAME)
    if not name:
        return
    try:
        account = await server.store("", "v1", "serviceaccounts").get(ns, name)
    except errors.StatusError as e:
        if e.code != 404:
            raise
        return
    uid = account["metadata"].get("uid", "")
    m.setdefault("annotations", {})[SA_UID] = uid
    data = secret.get("data") if isinstance(secret.get("data"), dict) else {}
    data["token"] = _b64std(server.sa_tokens.issue_legacy(ns, name, uid, m.get("name", "")))
    data["namespace"] = _b64std(ns)
    try:
        ca = await server.store("", "v1", "configmaps").get(ns, "kube-root-ca.crt")
        if (ca.get("data") or {}).get("ca.crt"):
            data["ca.crt"] = _b64std(ca["data"]["ca.crt"])
    except errors.StatusError as e:
        if e.code != 404:
            raise
    secret["data"] = data
