"""rbac.authorization.k8s.io/v1 Role, ClusterRole, RoleBinding and
ClusterRoleBinding: defaults and validation (pkg/apis/rbac). The authorizer
that reads them is kybern/apiserver/authz.py (docs/rbac.md)."""

from __future__ import annotations

import json

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy, validate_dns_subdomain
from kybern.machinery import errors

GROUP = "rbac.authorization.k8s.io"
_PATH_SEGMENT = ("", ".", "..")


def validate_rbac_name(name: str, path: str) -> list[Cause]:
    """ValidateRBACName (path.IsValidPathSegmentName): RBAC names are path segments,
    so `system:node` is valid where a DNS subdomain would not be."""
    if name in (".", ".."):
        return [errors.cause(path, f'Invalid value: "{name}": may not be \'{name}\'')]
    return [errors.cause(path, f'Invalid value: "{name}": may not contain \'{c}\'') for c in ("/", "%") if c in name]


def _go_strings(values: object) -> str:
    """Go's %#v of a []string, as field.Invalid prints the value."""
    items = values if isinstance(values, list) else []
    return "[]string{" + ", ".join(json.dumps(str(v)) for v in items) + "}"


def _validate_rules(rules: object, path: str, *, cluster: bool) -> list[Cause]:
    out: list[Cause] = []
    for i, r in enumerate(rules if isinstance(rules, list) else []):
        p = f"{path}[{i}]"
        if not r.get("verbs"):
            out.append(errors.required(f"{p}.verbs") | {"message": "Required value: verbs must contain at least "
                                                                   "one value"})
        if r.get("nonResourceURLs"):
            urls = _go_strings(r["nonResourceURLs"])
            if not cluster:
                out.append(errors.cause(f"{p}.nonResourceURLs", f"Invalid value: {urls}: namespaced rules cannot "
                                        "apply to non-resource URLs"))
            if r.get("resources") or r.get("apiGroups") or r.get("resourceNames"):
                out.append(errors.cause(f"{p}.nonResourceURLs", f"Invalid value: {urls}: rules cannot apply to "
                                        "both regular resources and non-resource URLs"))
            continue
        if not r.get("apiGroups"):
            out.append(errors.required(f"{p}.apiGroups") | {"message": "Required value: resource rules must "
                                                                       "supply at least one api group"})
        if not r.get("resources"):
            out.append(errors.required(f"{p}.resources") | {"message": "Required value: resource rules must "
                                                                       "supply at least one resource"})
    return out


class RoleStrategy(Strategy):
    cluster = False
    name_validator = staticmethod(validate_rbac_name)

    def validate(self, obj: Obj) -> list[Cause]:
        return _validate_rules(obj.get("rules"), "rules", cluster=self.cluster)


class ClusterRoleStrategy(RoleStrategy):
    cluster = True


def _default_subjects(obj: Obj) -> None:
    for s in obj.get("subjects") or []:
        if s.get("kind") in ("User", "Group"):
            s.setdefault("apiGroup", GROUP)
        elif s.get("kind") == "ServiceAccount":
            s.setdefault("apiGroup", "")


class RoleBindingStrategy(Strategy):
    cluster = False
    name_validator = staticmethod(validate_rbac_name)

    def default(self, obj: Obj) -> None:
        _default_subjects(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        out: list[Cause] = []
        ref = obj.get("roleRef") or {}
        kinds = ("ClusterRole",) if self.cluster else ("Role", "ClusterRole")
        if ref.get("apiGroup") != GROUP:
            out.append(errors.cause("roleRef.apiGroup", f'Unsupported value: "{ref.get("apiGroup", "")}": '
                                    f'supported values: "{GROUP}"', "FieldValueNotSupported"))
        if ref.get("kind") not in kinds:
            out.append(errors.cause("roleRef.kind", f'Unsupported value: "{ref.get("kind", "")}": supported '
                                    "values: " + ", ".join(f'"{k}"' for k in kinds), "FieldValueNotSupported"))
        if not ref.get("name"):
            out.append(errors.required("roleRef.name"))
        elif ref["name"] in _PATH_SEGMENT or "/" in ref["name"] or "%" in ref["name"]:
            out.append(errors.cause("roleRef.name", f'Invalid value: "{ref["name"]}": may not contain \'/\''))
        for i, s in enumerate(obj.get("subjects") or []):
            p = f"subjects[{i}]"
            if not s.get("name"):
                out.append(errors.required(f"{p}.name"))
            kind = s.get("kind")
            if kind not in ("ServiceAccount", "User", "Group"):
                out.append(errors.cause(f"{p}.kind", f'Unsupported value: "{kind}": supported values: '
                                        '"ServiceAccount", "User", "Group"', "FieldValueNotSupported"))
            if kind == "ServiceAccount":
                if s.get("name"):
                    out += validate_dns_subdomain(s["name"], f"{p}.name")
                if s.get("apiGroup"):
                    out.append(errors.cause(f"{p}.apiGroup", f'Unsupported value: "{s["apiGroup"]}": supported '
                                            'values: ""', "FieldValueNotSupported"))
                if self.cluster and not s.get("namespace"):
                    out.append(errors.required(f"{p}.namespace"))
            elif kind in ("User", "Group") and s.get("apiGroup") != GROUP:
                out.append(errors.cause(f"{p}.apiGroup", f'Unsupported value: "{s.get("apiGroup", "")}": supported '
                                        f'values: "{GROUP}"', "FieldValueNotSupported"))
        return out

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new)
        if new.get("roleRef") != old.get("roleRef"):
            # Go's %#v of the internal rbac.RoleRef, as field.Invalid prints it
            ref = new.get("roleRef") or {}
            value = (f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", Kind:"{ref.get("kind", "")}", '
                     f'Name:"{ref.get("name", "")}"}}')
            out.append(errors.cause("roleRef", f"Invalid value: {value}: cannot change roleRef"))
        return out


class ClusterRoleBindingStrategy(RoleBindingStrategy):
    cluster = True


RESOURCES = [
    ResourceInfo(GROUP, "v1", "Role", "roles", True, "io.k8s.api.rbac.v1.Role", strategy=RoleStrategy()),
    ResourceInfo(GROUP, "v1", "ClusterRole", "clusterroles", False, "io.k8s.api.rbac.v1.ClusterRole",
                 strategy=ClusterRoleStrategy()),
    ResourceInfo(GROUP, "v1", "RoleBinding", "rolebindings", True, "io.k8s.api.rbac.v1.RoleBinding",
                 strategy=RoleBindingStrategy()),
    ResourceInfo(GROUP, "v1", "ClusterRoleBinding", "clusterrolebindings", False,
                 "io.k8s.api.rbac.v1.ClusterRoleBinding", strategy=ClusterRoleBindingStrategy()),
]
