"""Validation of a pod spec's scheduling fields, `affinity` and `tolerations`, as
upstream's pkg/apis/core/validation (validateAffinity, ValidateNodeSelector,
ValidatePreferredSchedulingTerms, validatePodAffinityTerm, ValidateTolerations):
the same field paths and messages, so `kubectl apply` of a bad term is refused
rather than stored and never matched."""

from __future__ import annotations

import json
from typing import Any

from kybern.api.strategy import (_LABEL_VALUE, qualified_name_errors, validate_dns_label, validate_dns_subdomain,
                                  validate_label_selector)
from kybern.machinery import errors

Cause = dict[str, str]

_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
                    "'my_value',  or '12345', regex used for validation is "
                    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def _label_value_errors(value: Any) -> list[str]:
    if not isinstance(value, str):
        return []
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        out.append(_LABEL_VALUE_MSG)
    return out


def _label_name(key: Any, path: str) -> list[Cause]:
    """unversionedvalidation.ValidateLabelName: one cause per complaint."""
    key = key if isinstance(key, str) else ""
    return [errors.cause(path, f"Invalid value: {_shown(key)}: {msg}") for msg in qualified_name_errors(key)]


def _requirement(rq: Any, path: str, *, check_values: bool) -> list[Cause]:
    """ValidateNodeSelectorRequirement."""
    if not isinstance(rq, dict):
        return []
    out: list[Cause] = []
    op, values = rq.get("operator"), rq.get("values") or []
    if op in ("In", "NotIn"):
        if not values:
            out.append(errors.cause(f"{path}.values", "Required value: must be specified when `operator` is "
                                    "'In' or 'NotIn'", "FieldValueRequired"))
        if check_values:  # preferred terms; required ones tolerate old invalid values, as upstream
            for i, v in enumerate(values):
                out += [errors.cause(f"{path}.values[{i}]", f"Invalid value: {_shown(v)}: {m}")
                        for m in _label_value_errors(v)]
    elif op in ("Exists", "DoesNotExist"):
        if values:
            out.append(errors.cause(f"{path}.values", "Forbidden: may not be specified when `operator` is "
                                    "'Exists' or 'DoesNotExist'", "FieldValueForbidden"))
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            out.append(errors.cause(f"{path}.values", "Required value: must be specified single value when "
                                    "`operator` is 'Lt' or 'Gt'", "FieldValueRequired"))
    else:
        out.append(errors.cause(f"{path}.operator", f"Invalid value: {_shown(op or '')}: not a valid selector "
                                "operator"))
    return out + _label_name(rq.get("key"), f"{path}.key")


def _field_requirement(rq: Any, path: str) -> list[Cause]:
    """ValidateNodeFieldSelectorRequirement: only metadata.name, In/NotIn one value."""
    if not isinstance(rq, dict):
        return []
    out: list[Cause] = []
    op, values = rq.get("operator"), rq.get("values") or []
    if op in ("In", "NotIn"):
        if len(values) != 1:
            out.append(errors.cause(f"{path}.values", "Required value: must be only one value when `operator` is "
                                    "'In' or 'NotIn' for node field selector", "FieldValueRequired"))
    else:
        out.append(errors.cause(f"{path}.operator", f"Invalid value: {_shown(op or '')}: not a valid selector "
                                "operator"))
    key = rq.get("key")
    if key != "metadata.name":
        out.append(errors.cause(f"{path}.key", f"Invalid value: {_shown(key or '')}: not a valid field selector "
                                "key"))
    else:  # each value a node name (ValidateNodeName)
        for i, v in enumerate(values):
            out += validate_dns_subdomain(str(v), f"{path}.values[{i}]")
    return out


def _term(term: Any, path: str, *, check_values: bool) -> list[Cause]:
    """ValidateNodeSelectorTerm."""
    if not isinstance(term, dict):
        return []
    out: list[Cause] = []
    for j, rq in enumerate(term.get("matchExpressions") or []):
        out += _requirement(rq, f"{path}.matchExpressions[{j}]", check_values=check_values)
    for j, rq in enumerate(term.get("matchFields") or []):
        out += _field_requirement(rq, f"{path}.matchFields[{j}]")
    return out


def _weight(w: Any, path: str) -> list[Cause]:
    if not isinstance(w, int) or isinstance(w, bool) or not 1 <= w <= 100:
        return [errors.cause(path, f"Invalid value: {_shown(w if w is not None else 0)}: must be in the range "
                             "1-100")]
    return []


def _node_affinity(na: dict[str, Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
    if isinstance(req, dict):
        p = f"{path}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        terms = req.get("nodeSelectorTerms") or []
        if not terms:
            out.append(errors.cause(p, "Required value: must have at least one node selector term",
                                    "FieldValueRequired"))
        for i, term in enumerate(terms):
            out += _term(term, f"{p}[{i}]", check_values=False)
    for i, pref in enumerate(na.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
        if not isinstance(pref, dict):
            continue
        p = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        out += _weight(pref.get("weight"), f"{p}.weight")
        out += _term(pref.get("preference"), f"{p}.preference", check_values=True)
    return out


def _pod_affinity_term(term: Any, path: str) -> list[Cause]:
    """validatePodAffinityTerm."""
    if not isinstance(term, dict):
        return []
    out = validate_label_selector(term.get("labelSelector"), f"{path}.labelSelector")
    out += validate_label_selector(term.get("namespaceSelector"), f"{path}.namespaceSelector")
    for name in term.get("namespaces") or []:
        out += validate_dns_label(str(name), f"{path}.namespace")  # upstream's path, singular
    key = term.get("topologyKey") or ""
    if not key:
        out.append(errors.cause(f"{path}.topologyKey", "Required value: can not be empty", "FieldValueRequired"))
    return out + _label_name(key, f"{path}.topologyKey")


def _pod_affinity(pa: dict[str, Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    for i, term in enumerate(pa.get("requiredDuringSchedulingIgnoredDuringExecution") or []):
        out += _pod_affinity_term(term, f"{path}.requiredDuringSchedulingIgnoredDuringExecution[{i}]")
    for i, w in enumerate(pa.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
        if not isinstance(w, dict):
            continue
        p = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        out += _weight(w.get("weight"), f"{p}.weight")
        out += _pod_affinity_term(w.get("podAffinityTerm"), f"{p}.podAffinityTerm")
    return out


def validate_affinity(affinity: Any, path: str) -> list[Cause]:
    """validateAffinity: nodeAffinity, podAffinity, podAntiAffinity."""
    if not isinstance(affinity, dict):
        return []
    out: list[Cause] = []
    if isinstance(affinity.get("nodeAffinity"), dict):
        out += _node_affinity(affinity["nodeAffinity"], f"{path}.nodeAffinity")
    for kind in ("podAffinity", "podAntiAffinity"):
        if isinstance(affinity.get(kind), dict):
            out += _pod_affinity(affinity[kind], f"{path}.{kind}")
    return out


def _go_toleration(t: dict[str, Any]) -> str:
    """The toleration as Go's %#v prints core.Toleration (upstream shows the whole
    struct when a value comes with `Exists`); a set tolerationSeconds is a pointer
    there, an address nobody can predict, shown here by its value."""
    secs = t.get("tolerationSeconds")
    shown = "(*int64)(nil)" if secs is None else f"(*int64)({secs})"
    return (f'core.Toleration{{Key:{json.dumps(t.get("key") or "")}, Operator:{json.dumps(t.get("operator") or "")}, '
            f'Value:{json.dumps(t.get("value") or "")}, Effect:{json.dumps(t.get("effect") or "")}, '
            f"TolerationSeconds:{shown}}}")


def validate_tolerations(tolerations: Any, path: str) -> list[Cause]:
    """ValidateTolerations."""
    out: list[Cause] = []
    for i, t in enumerate(tolerations if isinstance(tolerations, list) else []):
        if not isinstance(t, dict):
            continue
        p = f"{path}[{i}]"
        key, op, value, effect = t.get("key") or "", t.get("operator") or "", t.get("value") or "", \
            t.get("effect") or ""
        if key:
            out += _label_name(key, f"{p}.key")
        if not key and op != "Exists":
            out.append(errors.cause(f"{p}.operator", f"Invalid value: {_shown(op)}: operator must be Exists when "
                                    '`key` is empty, which means "match all values and all keys"'))
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            out.append(errors.cause(f"{p}.effect", f"Invalid value: {_shown(effect)}: effect must be 'NoExecute' "
                                    "when `tolerationSeconds` is set"))
        if op in ("Equal", ""):
            msgs = _label_value_errors(value)
            if msgs:
                out.append(errors.cause(f"{p}.operator", f"Invalid value: {_shown(value)}: {';'.join(msgs)}"))
        elif op == "Exists":
            if value:
                out.append(errors.cause(f"{p}.operator", f"Invalid value: {_go_toleration(t)}: value must be "
                                        "empty when `operator` is 'Exists'"))
        else:
            out.append(errors.cause(f"{p}.operator", f"Unsupported value: {_shown(op)}: supported values: "
                                    '"Equal", "Exists"', "FieldValueNotSupported"))
        if effect and effect not in TAINT_EFFECTS:
            out.append(errors.cause(f"{p}.effect", f"Unsupported value: {_shown(effect)}: supported values: "
                                    + ", ".join(f'"{e}"' for e in TAINT_EFFECTS), "FieldValueNotSupported"))
    return out


def validate_topology_spread(constraints: Any, path: str) -> list[Cause]:
    """validateTopologySpreadConstraints."""
    out: list[Cause] = []
    items = [c for c in constraints if isinstance(c, dict)] if isinstance(constraints, list) else []
    for i, c in enumerate(items):
        p = f"{path}[{i}]"
        skew = c.get("maxSkew")
        if not isinstance(skew, int) or skew <= 0:
            out.append(errors.cause(f"{p}.maxSkew", f"Invalid value: {_shown(skew or 0)}: must be greater than "
                                    "zero"))
        key, action = c.get("topologyKey") or "", c.get("whenUnsatisfiable") or ""
        if not key:
            out.append(errors.cause(f"{p}.topologyKey", "Required value: can not be empty", "FieldValueRequired"))
        if action not in ("DoNotSchedule", "ScheduleAnyway"):
            out.append(errors.cause(f"{p}.whenUnsatisfiable", f"Unsupported value: {_shown(action)}: supported "
                                    'values: "DoNotSchedule", "ScheduleAnyway"', "FieldValueNotSupported"))
        # {topologyKey, whenUnsatisfiable} names one kind of constraint
        if any((r.get("topologyKey") or "", r.get("whenUnsatisfiable") or "") == (key, action)
               for r in items[i + 1:]):
            out.append(errors.cause(f"{p}.{{topologyKey, whenUnsatisfiable}}",
                                    f"Duplicate value: {_shown(f'{{{key}, {action}}}')}", "FieldValueDuplicate"))
        md = c.get("minDomains")
        if md is not None:
            if not isinstance(md, int) or md <= 0:
                out.append(errors.cause(f"{p}.minDomains", f"Invalid value: {_shown(md)}: must be greater than zero"))
            if action != "DoNotSchedule":
                out.append(errors.cause(f"{p}.minDomains", f"Invalid value: {_shown(md)}: can only use minDomains "
                                        f"if whenUnsatisfiable=DoNotSchedule, not {action}"))
        for policy in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            v = c.get(policy)
            if v is not None and v not in ("Honor", "Ignore"):
                out.append(errors.cause(f"{p}.{policy}", f'Unsupported value: {_shown(v)}: supported values: '
                                        '"Honor", "Ignore"', "FieldValueNotSupported"))
        keys = c.get("matchLabelKeys") or []
        sel = c.get("labelSelector")
        if keys and not isinstance(sel, dict):
            out.append(errors.cause(f"{p}.matchLabelKeys", "Forbidden: must not be specified when labelSelector "
                                    "is not set", "FieldValueForbidden"))
        elif keys:
            in_selector = set(sel.get("matchLabels") or {}) | {e.get("key") for e in sel.get("matchExpressions") or []
                                                              if isinstance(e, dict)}
            for j, k in enumerate(keys):
                out += _label_name(k, f"{p}.matchLabelKeys[{j}]")
                if k in in_selector:
                    out.append(errors.cause(f"{p}.matchLabelKeys[{j}]", f"Invalid value: {_shown(k)}: exists in "
                                            "both matchLabelKeys and labelSelector"))
        out += validate_label_selector(sel, f"{p}.labelSelector")
    return out


def validate_taints(taints: Any, path: str) -> list[Cause]:
    """validateNodeTaints: label-name keys, label-value values, an effect, unique by
    key and effect."""
    out: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, t in enumerate(taints if isinstance(taints, list) else []):
        if not isinstance(t, dict):
            continue
        p = f"{path}[{i}]"
        key, value, effect = t.get("key") or "", t.get("value") or "", t.get("effect") or ""
        out += _label_name(key, f"{p}.key")
        msgs = _label_value_errors(value)
        if msgs:
            out.append(errors.cause(f"{p}.value", f"Invalid value: {_shown(value)}: {';'.join(msgs)}"))
        if not effect:
            out.append(errors.cause(f"{p}.effect", "Required value", "FieldValueRequired"))
        elif effect not in TAINT_EFFECTS:
            out.append(errors.cause(f"{p}.effect", f"Unsupported value: {_shown(effect)}: supported values: "
                                    + ", ".join(f'"{e}"' for e in TAINT_EFFECTS), "FieldValueNotSupported"))
        if (key, effect) in seen:
            # a set timeAdded is a pointer in Go's %#v; shown by whether it is set
            added = "(*v1.Time)(nil)" if not t.get("timeAdded") else "(*v1.Time)(0xc000000000)"
            shown = (f"core.Taint{{Key:{json.dumps(key)}, Value:{json.dumps(value)}, Effect:{json.dumps(effect)}, "
                     f"TimeAdded:{added}}}")
            out.append(errors.cause(p, f"Duplicate value: {shown}: taints must be unique by key and effect pair",
                                    "FieldValueDuplicate"))
            continue
        seen.add((key, effect))
    return out
