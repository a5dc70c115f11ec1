"""Bootstrap tokens, as upstream's authenticator (`--enable-bootstrap-token-auth`,
on in kubeadm clusters; kubernetes.io "Authenticating with Bootstrap Tokens").

A bearer token `<id>.<secret>` (`[a-z0-9]{6}.[a-z0-9]{16}`) is the Secret
`kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` whose
`token-id` and `token-secret` match, whose `usage-bootstrap-authentication` is
"true", that is not being deleted and whose `expiration` (RFC 3339), if any, has not
passed. It authenticates as `system:bootstrap:<id>` in `system:bootstrappers` and the
groups of `auth-extra-groups` (comma-separated, each `system:bootstrappers:...`). A
token that does not authenticate is only "invalid bearer token" to the client, as
upstream logs the reason and answers 401. The tokencleaner controller deletes
expired ones (controllers/tokencleaner.py).
"""

from __future__ import annotations

import hmac
import re
from typing import TYPE_CHECKING, Any

import orjson

from kybern.api.bootstrap_token import SECRET_PREFIX, SECRET_TYPE, TOKEN, decoded, expired
from kybern.apiserver.store import object_key

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

GROUP = "system:bootstrappers"
_EXTRA_GROUP = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")


def is_bootstrap_token(token: str) -> bool:
    return TOKEN.match(token) is not None


async def authenticate(server: APIServer, token: str) -> dict[str, Any] | None:
    m = TOKEN.match(token)
    if m is None:
        return None
    token_id, token_secret = m.groups()
    secrets = server.store("", "v1", "secrets")
    entry = await secrets.cache.get(secrets.prefix, object_key(secrets.info, "kube-system", SECRET_PREFIX + token_id))
    if entry is None:
        return None
    secret = orjson.loads(entry.raw)
    if (secret.get("metadata") or {}).get("deletionTimestamp") or secret.get("type") != SECRET_TYPE:
        return None
    data = decoded(secret)
    if not hmac.compare_digest(data.get("token-secret", "").encode(), token_secret.encode()):
        return None
    if data.get("token-id") != token_id or expired(data) or data.get("usage-bootstrap-authentication") != "true":
        return None
    groups = [GROUP]
    for g in (data.get("auth-extra-groups") or "").split(","):
        g = g.strip()
        if not g:
            continue
        if not _EXTRA_GROUP.match(g):
            return None  # upstream refuses the token over a bad extra group
        groups.append(g)
    return {"username": f"system:bootstrap:{token_id}", "groups": [*dict.fromkeys(groups), "system:authenticated"]}
