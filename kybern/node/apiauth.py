"""Who may use the node agent's HTTP API, as the kubelet's webhook authentication and
authorization (`--authentication-token-webhook`, `--authorization-mode=Webhook`,
pkg/kubelet/server/auth.go):

- the cluster's own callers (the apiserver proxying `kubectl logs/exec`, the metrics
  pipeline) present the node join token and are let in at once;
- any other bearer token is checked with a TokenReview, and the user it names with a
  SubjectAccessReview for the `nodes` resource, this node's name, the HTTP method's verb
  (GET → get, POST → create, PUT → update, PATCH → patch, DELETE → delete) and the
  subresource the path maps to (`/stats/*` → stats, `/metrics*` → metrics, `/logs/*` → log,
  `/spec/*` → spec, anything else → proxy): e.g. a Prometheus service account bound to
  `get nodes/metrics` scrapes `/metrics`. Answers are cached as the kubelet's defaults:
  authentication 2 minutes, allowed 5 minutes, denied 30 seconds.

401 `Unauthorized` without a token the API accepts, 403 `Forbidden (user=NAME,
verb=VERB, resource=nodes, subresource=SUB)` as the kubelet words it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kybern.client.resources import SUBJECTACCESSREVIEWS, Resource

if TYPE_CHECKING:
    from kybern.client.http import Client

TOKENREVIEWS = Resource("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", namespaced=False)
AUTHN_TTL, ALLOWED_TTL, DENIED_TTL = 120.0, 300.0, 30.0
_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def subresource(path: str) -> str:
    """The kubelet's NodeRequestAttributesGetter: which nodes/<sub> a path needs."""
    for prefix, sub in (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"), ("/spec", "spec")):
        if path == prefix or path.startswith(prefix + "/"):
            return sub
    return "proxy"


class WebhookAuth:
    def __init__(self, client: Callable[[], Client], node_name: str) -> None:
        self._client = client  # the agent's current client (its identity may change after TLS bootstrap)
        self.node_name = node_name
        self._users: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._decisions: dict[tuple[str, str, str], tuple[float, bool]] = {}

    async def user(self, token: str) -> dict[str, Any] | None:
        """The user a token authenticates as (TokenReview), None when it does not."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        got = self._users.get(key)
        if got is not None and got[0] > now:
            return got[1]
        review = await self._client().create(TOKENREVIEWS, {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
        st = review.get("status") or {}
        user = st.get("user") if st.get("authenticated") else None
        if len(self._users) > 4096:
            self._users.clear()
        self._users[key] = (now + AUTHN_TTL, user)
        return user

    async def allowed(self, user: dict[str, Any], method: str, path: str) -> tuple[bool, str, str]:
        """(allowed, verb, subresource) for the user's request (SubjectAccessReview)."""
        verb, sub = _VERBS.get(method, method.lower()), subresource(path)
        key = (user.get("username") or "", verb, sub)
        now = time.monotonic()
        got = self._decisions.get(key)
        if got is not None and got[0] > now:
            return got[1], verb, sub
        spec: dict[str, Any] = {"user": user.get("username") or "", "groups": list(user.get("groups") or []),
                                "resourceAttributes": {"verb": verb, "resource": "nodes", "subresource": sub,
                                                       "name": self.node_name}}
        if user.get("uid"):
            spec["uid"] = user["uid"]
        if user.get("extra"):
            spec["extra"] = user["extra"]
        review = await self._client().create(SUBJECTACCESSREVIEWS, {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec})
        ok = bool((review.get("status") or {}).get("allowed"))
        if len(self._decisions) > 4096:
            self._decisions.clear()
        self._decisions[key] = (now + (ALLOWED_TTL if ok else DENIED_TTL), ok)
        return ok, verb, sub
