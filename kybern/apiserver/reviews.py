"""Create-only "review" resources that are answered, never stored:
SelfSubjectAccessReview (`kubectl auth can-i`), SelfSubjectRulesReview
(`kubectl auth can-i --list`) and SelfSubjectReview (`kubectl auth whoami`).

There is no RBAC yet: every authenticated user may do everything, and the
answers say so truthfully."""

from __future__ import annotations

from typing import Any

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Strategy
from kybern.machinery import errors, meta

CREATE_ONLY = ("create",)

RESOURCES = [
    ResourceInfo("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
                 "io.k8s.api.authorization.v1.SelfSubjectAccessReview", verbs=CREATE_ONLY, strategy=Strategy()),
    ResourceInfo("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False,
                 "io.k8s.api.authorization.v1.SelfSubjectRulesReview", verbs=CREATE_ONLY, strategy=Strategy()),
    ResourceInfo("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False,
                 "io.k8s.api.authentication.v1.SelfSubjectReview", verbs=CREATE_ONLY, strategy=Strategy()),
]

ADMIN = {"username": "kybern-admin", "groups": ["system:masters", "system:authenticated"]}


def answer(info: ResourceInfo, body: Any, user: dict[str, Any] | None = None) -> dict[str, Any]:
    """`user`: who the request authenticated as when not the admin (a service account token)."""
    if not isinstance(body, dict):
        raise errors.bad_request(f"the object provided is not a valid {info.kind}")
    out = dict(body)
    out["apiVersion"], out["kind"] = info.api_version, info.kind
    out.setdefault("metadata", {})["creationTimestamp"] = meta.now()
    if info.kind == "SelfSubjectAccessReview":
        out["status"] = {"allowed": True, "reason": "kybern has no RBAC yet: authenticated users may do anything"}
    elif info.kind == "SelfSubjectRulesReview":
        out["status"] = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                         "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": False}
    else:
        out["status"] = {"userInfo": user or ADMIN}
    return out
