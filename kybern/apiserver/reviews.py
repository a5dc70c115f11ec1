"""Create-only "review" resources that are answered, never stored:
SelfSubjectAccessReview (`kubectl auth can-i`), SelfSubjectRulesReview
(`kubectl auth can-i --list`), SubjectAccessReview, LocalSubjectAccessReview,
SelfSubjectReview (`kubectl auth whoami`) and TokenReview (what webhook
authenticators, kube-rbac-proxy and aggregated API servers call to check a bearer
token). The access reviews ask the server's authorizer chain (authz.py) and the
token review its token authenticators, as upstream's registries do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Strategy
from kybern.machinery import errors, meta

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

CREATE_ONLY = ("create",)
AUTHZ = "authorization.k8s.io"

RESOURCES = [
    ResourceInfo(AUTHZ, "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
                 "io.k8s.api.authorization.v1.SelfSubjectAccessReview", verbs=CREATE_ONLY, strategy=Strategy()),
    ResourceInfo(AUTHZ, "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False,
                 "io.k8s.api.authorization.v1.SelfSubjectRulesReview", verbs=CREATE_ONLY, strategy=Strategy()),
    ResourceInfo(AUTHZ, "v1", "SubjectAccessReview", "subjectaccessreviews", False,
                 "io.k8s.api.authorization.v1.SubjectAccessReview", verbs=CREATE_ONLY, strategy=Strategy()),
    ResourceInfo(AUTHZ, "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", True,
                 "io.k8s.api.authorization.v1.LocalSubjectAccessReview", verbs=CREATE_ONLY, strategy=Strategy()),
    ResourceInfo("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False,
                 "io.k8s.api.authentication.v1.SelfSubjectReview", verbs=CREATE_ONLY, strategy=Strategy()),
    ResourceInfo("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False,
                 "io.k8s.api.authentication.v1.TokenReview", verbs=CREATE_ONLY, strategy=Strategy()),
]

ADMIN = {"username": "kybern-admin", "groups": ["system:masters", "system:authenticated"]}


def _invalid(info: ResourceInfo, field: str, message: str, type_: str = "FieldValueInvalid") -> errors.StatusError:
    return errors.invalid(info.group, info.kind, "", [errors.cause(field, message, type_)])


def _attributes(info: ResourceInfo, spec: dict[str, Any], user: dict[str, Any]) -> Any:
    """The authorizer.Attributes of a review's spec (ResourceAttributesFrom / NonResourceAttributesFrom)."""
    from kybern.apiserver import authz

    ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if ra and nra:
        raise _invalid(info, "spec.nonResourceAttributes", "Invalid value: \"null\": cannot be specified in "
                       "combination with resourceAttributes")
    if not ra and not nra:
        raise _invalid(info, "spec.resourceAttributes", "Invalid value: \"null\": exactly one of "
                       "nonResourceAttributes or resourceAttributes must be specified")
    if nra:
        if not isinstance(nra, dict):
            raise errors.bad_request(f"the object provided is not a valid {info.kind}")
        return authz.Attributes(user, str(nra.get("verb") or ""), resource_request=False, path=str(nra.get("path") or ""))
    if not isinstance(ra, dict):
        raise errors.bad_request(f"the object provided is not a valid {info.kind}")
    return authz.Attributes(user, str(ra.get("verb") or ""), api_group=str(ra.get("group") or ""),
                            api_version=str(ra.get("version") or ""), resource=str(ra.get("resource") or ""),
                            subresource=str(ra.get("subresource") or ""), namespace=str(ra.get("namespace") or ""),
                            name=str(ra.get("name") or ""))


async def _access_status(server: APIServer, a: Any) -> dict[str, Any]:
    ok, why = await server.authorizer.authorize_fresh(a)
    status: dict[str, Any] = {"allowed": ok}
    if why:
        status["reason"] = why
    return status


async def answer(server: APIServer, info: ResourceInfo, body: Any, user: dict[str, Any] | None = None,
                 namespace: str | None = None) -> dict[str, Any]:
    """`user`: who the request authenticated as (None: the admin token)."""
    if not isinstance(body, dict):
        raise errors.bad_request(f"the object provided is not a valid {info.kind}")
    user = user or ADMIN
    # type meta and metadata first, as every object kybern returns (the request's key order
    # would put them after spec)
    out = {"apiVersion": info.api_version, "kind": info.kind, "metadata": dict(body.get("metadata") or {}),
           **{k: v for k, v in body.items() if k not in ("apiVersion", "kind", "metadata")}}
    # access reviews echo the request as upstream's REST does (no system metadata: kubectl
    # shows `creationTimestamp: null`); whoami's SelfSubjectReview is stamped
    out["metadata"]["creationTimestamp"] = None if info.kind.endswith(("AccessReview", "TokenReview")) \
        else meta.now()
    spec = out.get("spec") if isinstance(out.get("spec"), dict) else {}
    if info.kind == "SelfSubjectAccessReview":
        out["status"] = await _access_status(server, _attributes(info, spec, user))
    elif info.kind in ("SubjectAccessReview", "LocalSubjectAccessReview"):
        if not spec.get("user") and not spec.get("groups"):
            raise _invalid(info, "spec.user", 'Invalid value: "": at least one of user or group must be specified')
        if info.kind == "LocalSubjectAccessReview":
            out["metadata"]["namespace"] = namespace
            if spec.get("nonResourceAttributes"):
                raise _invalid(info, "spec.nonResourceAttributes", "Invalid value: \"null\": disallowed on this "
                               "kind of request")
            ra_ns = (spec.get("resourceAttributes") or {}).get("namespace") or ""
            if ra_ns != namespace:
                raise errors.bad_request(f"spec.resourceAttributes.namespace must match namespace: {namespace}")
        subject: dict[str, Any] = {"username": spec.get("user") or "", "groups": list(spec.get("groups") or [])}
        out["status"] = await _access_status(server, _attributes(info, spec, subject))
    elif info.kind == "SelfSubjectRulesReview":
        ns = spec.get("namespace") or ""
        if not ns:
            raise errors.bad_request("no namespace on request")
        res, nonres, incomplete, err = server.authorizer.rules_for(user, ns)
        out["status"] = {"resourceRules": res, "nonResourceRules": nonres, "incomplete": incomplete}
        if err:
            out["status"]["evaluationError"] = err
    elif info.kind == "TokenReview":
        out["status"] = await _token_status(server, spec)
    else:
        out["status"] = {"userInfo": user}
    return out


async def _token_status(server: APIServer, spec: dict[str, Any]) -> dict[str, Any]:
    """Upstream's TokenReview REST: the token as the only credential of a request to
    this server's token authenticators, for spec.audiences (none: the server's own);
    status.audiences are those of the token's among them. Client certificates and
    impersonation do not come into it (a review carries a token only)."""
    from kybern.apiserver import authz, bootstraptokens, satokens

    token = spec.get("token")
    if not isinstance(token, str) or not token:
        raise errors.bad_request("token is required for TokenReview in authentication")
    auds = spec.get("audiences") or []
    if not isinstance(auds, list) or not all(isinstance(a, str) for a in auds):
        raise errors.bad_request("the object provided is not a valid TokenReview")
    wanted = auds or list(satokens.API_AUDIENCES)
    user: dict[str, Any] | None = None
    got: list[str] = []
    why = ""
    if token in server.tokens:
        # the static tokens (upstream's --token-auth-file) are for the API server's audiences only
        got = [a for a in wanted if a in satokens.API_AUDIENCES]
        if got:
            user = authz.NODE_USER if token == server.node_token else ADMIN
    elif token.count(".") == 2:
        user, got, why = await satokens.review(server, token, wanted)
    elif bootstraptokens.is_bootstrap_token(token):
        # upstream's bootstrap authenticator names no audiences: it answers for the server's own
        got = [a for a in wanted if a in satokens.API_AUDIENCES]
        user = await bootstraptokens.authenticate(server, token) if got else None
    status: dict[str, Any] = {}
    if user is not None:
        status["authenticated"] = True
        status["user"] = {k: v for k, v in user.items() if v}  # UserInfo's omitempty fields
        status["audiences"] = got
    else:
        # the bearer token authenticator's default error, joined with the token
        # authenticator's reason as upstream's union of authenticators prints them
        status["error"] = f"[invalid bearer token, {why}]" if why else "invalid bearer token"
        status["user"] = {}
    return status
