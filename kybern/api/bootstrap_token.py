"""What a bootstrap token Secret says (kubernetes.io "Authenticating with Bootstrap
Tokens"): shared by the apiserver's authenticator (apiserver/bootstraptokens.py)
and the token cleaner (controllers/tokencleaner.py)."""

from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Any

TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
# the extra group of `kybern token create`'s tokens, as kubeadm's
# system:bootstrappers:kubeadm:default-node-token: it may ask for node client certificates
NODE_GROUP = "system:bootstrappers:kybern:default-node-token"


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    """The Secret's data, base64-decoded (values that do not decode are left out)."""
    out = {}
    for k, v in (secret.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v).decode()
        except (ValueError, TypeError):
            continue
    return out


def expiration(data: dict[str, str]) -> dt.datetime | None:
    """The `expiration` (RFC 3339, with its zone); None when there is none or it does not parse."""
    value = data.get("expiration")
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def expired(data: dict[str, str], now: dt.datetime | None = None) -> bool:
    """Has the `expiration` passed? An unparsable one counts as passed, as upstream's HasExpired."""
    if not data.get("expiration"):
        return False
    when = expiration(data)
    return when is None or (now or dt.datetime.now(dt.UTC)) >= when


def detached_signature(content: str, token_id: str, token_secret: str) -> str:
    """The `jws-kubeconfig-<id>` value the bootstrap signer keeps in kube-public/cluster-info
    (upstream's cluster-bootstrap jws.ComputeDetachedSignature): a compact JWS of `content`,
    HS256 keyed by the whole token, `kid` the token id, with the payload left out
    (`header..signature`)."""
    import hashlib
    import hmac

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).decode().rstrip("=")

    header = b64(f'{{"alg":"HS256","kid":"{token_id}"}}'.encode())
    signing_input = f"{header}.{b64(content.encode())}".encode()
    sig = hmac.new(f"{token_id}.{token_secret}".encode(), signing_input, hashlib.sha256).digest()
    return f"{header}..{b64(sig)}"
