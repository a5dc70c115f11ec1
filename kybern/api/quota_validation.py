"""What a ResourceQuota's spec may say, as upstream's ValidateResourceQuotaSpec
(pkg/apis/core/validation): resource names, non-negative amounts, whole numbers
for object counts, scopes that apply to the resources named, no conflicting
scopes, scope selector operators and values; scopes cannot change on update. The
field paths and messages (Go's %#v of the offending list) are upstream's."""

from __future__ import annotations

import json
from typing import Any

from kybern.api.strategy import qualified_name_errors
from kybern.machinery import errors, quantity

Cause = dict[str, str]

_STANDARD = {"cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage",
             "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods", "resourcequotas", "services",
             "replicationcontrollers", "secrets", "configmaps", "persistentvolumeclaims", "storage",
             "requests.storage", "services.nodeports", "services.loadbalancers"}
_STANDARD_QUOTA = _STANDARD - {"storage"}
_INTEGER = {"pods", "resourcequotas", "services", "replicationcontrollers", "secrets", "configmaps",
            "persistentvolumeclaims", "services.nodeports", "services.loadbalancers"}
_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
           "CrossNamespacePodAffinity")
_POD_COMPUTE = {"cpu", "memory", "limits.cpu", "limits.memory", "requests.cpu", "requests.memory"}
_EXISTS_ONLY = ("BestEffort", "NotBestEffort", "Terminating", "NotTerminating", "CrossNamespacePodAffinity")
_CONFLICTS = (("BestEffort", "NotBestEffort"), ("Terminating", "NotTerminating"))


def _hugepages(name: str) -> bool:
    return name.startswith(("hugepages-", "requests.hugepages-"))


def _standard_quota(name: str) -> bool:
    return name in _STANDARD_QUOTA or _hugepages(name)


def _scope_fits(scope: str, resource: str) -> bool:
    """IsResourceQuotaScopeValidForResource."""
    if scope == "BestEffort":
        return resource == "pods"
    if scope in _SCOPES:
        return resource == "pods" or resource in _POD_COMPUTE
    return True


def _go_strings(type_: str, values: Any) -> str:
    if not values:
        return f"{type_}(nil)"
    return type_ + "{" + ", ".join(json.dumps(str(v)) for v in values) + "}"


def _go_selector(sel: dict[str, Any]) -> str:
    reqs = [r for r in sel.get("matchExpressions") or [] if isinstance(r, dict)]
    inner = ", ".join(
        f'core.ScopedResourceSelectorRequirement{{ScopeName:{json.dumps(r.get("scopeName") or "")}, '
        f'Operator:{json.dumps(r.get("operator") or "")}, Values:{_go_strings("[]string", r.get("values"))}}}'
        for r in reqs)
    exprs = f"[]core.ScopedResourceSelectorRequirement{{{inner}}}" if reqs else \
        "[]core.ScopedResourceSelectorRequirement(nil)"
    return f"core.ScopeSelector{{MatchExpressions:{exprs}}}"


def _hard(hard: dict[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    for name in sorted(hard):  # upstream walks a map; sorted keeps the message stable
        p = f"spec.hard[{name}]"
        msgs = qualified_name_errors(name)
        out += [errors.cause(p, f"Invalid value: {json.dumps(name)}: {m}") for m in msgs]
        if not msgs and "/" not in name:
            if name not in _STANDARD and not _hugepages(name):
                out.append(errors.cause(p, f"Invalid value: {json.dumps(name)}: must be a standard resource type "
                                        "or fully qualified"))
        if "/" not in name and not _standard_quota(name):
            out.append(errors.cause(p, f"Invalid value: {json.dumps(name)}: must be a standard resource for quota"))
        try:
            amount = quantity.value(hard[name])
        except (ValueError, ArithmeticError, TypeError):
            continue  # a malformed quantity is the decoder's error
        if amount < 0:
            out.append(errors.cause(p, f'Invalid value: "{quantity.canonical(hard[name])}": must be greater than '
                                    "or equal to 0"))
    return out


def validate_quota_spec(spec: Any) -> list[Cause]:
    if not isinstance(spec, dict):
        return []
    hard = spec.get("hard") if isinstance(spec.get("hard"), dict) else {}
    out = _hard(hard)
    names = sorted(hard)
    scopes = [s for s in spec.get("scopes") or [] if isinstance(s, str)]
    shown = _go_strings("[]core.ResourceQuotaScope", scopes)
    for scope in scopes:
        if scope not in _SCOPES:
            out.append(errors.cause("spec.scopes", f"Invalid value: {shown}: unsupported scope"))
        for name in names:
            if _standard_quota(name) and not _scope_fits(scope, name):
                out.append(errors.cause("spec.scopes", f"Invalid value: {shown}: unsupported scope applied to "
                                        "resource"))
    for pair in _CONFLICTS:
        if all(s in scopes for s in pair):
            out.append(errors.cause("spec.scopes", f"Invalid value: {shown}: conflicting scopes"))
    sel = spec.get("scopeSelector")
    if isinstance(sel, dict):
        p = "spec.scopeSelector.matchExpressions"
        seen: set[str] = set()
        for req in sel.get("matchExpressions") or []:
            if not isinstance(req, dict):
                continue
            name, op, values = req.get("scopeName") or "", req.get("operator") or "", req.get("values") or []
            if name not in _SCOPES:
                out.append(errors.cause(f"{p}.scopeName", f"Invalid value: {json.dumps(name)}: unsupported scope"))
            for r in names:
                if _standard_quota(r) and not _scope_fits(name, r):
                    out.append(errors.cause(p, f"Invalid value: {_go_selector(sel)}: unsupported scope applied to "
                                            "resource"))
            if name in _EXISTS_ONLY and op != "Exists":
                out.append(errors.cause(f"{p}.operator", f"Invalid value: {json.dumps(op)}: must be 'Exist' when "
                                        "scope is any of ResourceQuotaScopeTerminating, "
                                        "ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, "
                                        "ResourceQuotaScopeNotBestEffort or "
                                        "ResourceQuotaScopeCrossNamespacePodAffinity"))
            if op in ("In", "NotIn"):
                if not values:
                    out.append(errors.cause(f"{p}.values", "Required value: must be at least one value when "
                                            "`operator` is 'In' or 'NotIn' for scope selector", "FieldValueRequired"))
            elif op in ("Exists", "DoesNotExist"):
                if values:
                    out.append(errors.cause(f"{p}.values", f"Invalid value: {_go_strings('[]string', values)}: must "
                                            "be no value when `operator` is 'Exist' or 'DoesNotExist' for scope "
                                            "selector"))
            else:
                out.append(errors.cause(f"{p}.operator", f"Invalid value: {json.dumps(op)}: not a valid selector "
                                        "operator"))
            seen.add(name)
        for pair in _CONFLICTS:
            if all(s in seen for s in pair):
                # upstream shows spec.scopes here, not the selector
                out.append(errors.cause(p, f"Invalid value: {shown}: conflicting scopes"))
    return out


def validate_quota_update(new: Any, old: Any) -> list[Cause]:
    """ValidateResourceQuotaUpdate: scopes are immutable (as a set)."""
    ns = [s for s in (new or {}).get("scopes") or [] if isinstance(s, str)]
    os_ = [s for s in (old or {}).get("scopes") or [] if isinstance(s, str)]
    if set(ns) != set(os_):
        return [errors.cause("spec.scopes", f"Invalid value: {_go_strings('[]core.ResourceQuotaScope', ns)}: "
                             "field is immutable")]
    return []
