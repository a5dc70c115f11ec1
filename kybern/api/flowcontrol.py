"""flowcontrol.apiserver.k8s.io/v1: FlowSchema and PriorityLevelConfiguration (API
Priority and Fairness's configuration), their defaults and validation as upstream's
pkg/apis/flowcontrol, and the mandatory and suggested objects every apiserver keeps
(k8s.io/apiserver's flowcontrol/bootstrap). kybern stores and serves them; it does not
queue requests by them (docs/apiserver.md)."""

from __future__ import annotations

import copy
import math
from typing import Any

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy, validate_dns_label, validate_dns_subdomain
from kybern.machinery import errors

GROUP = "flowcontrol.apiserver.k8s.io"
API_VERSION = f"{GROUP}/v1"
AUTOUPDATE = "apf.kubernetes.io/autoupdate-spec"
MAX_MATCHING_PRECEDENCE = 10000
MAX_QUEUES = 10 * 1000 * 1000
MAX_HASH_BITS = 60
VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "proxy", "update", "watch")
DISTINGUISHERS = ("ByNamespace", "ByUser")
SUBJECT_KINDS = ("Group", "ServiceAccount", "User")
PL_TYPES = ("Exempt", "Limited")
LIMIT_RESPONSES = ("Queue", "Reject")
_NS_INTRO = "each member of this list must be '*' or a DNS-1123 label; "


# -- the bootstrap configuration (mandatory first, then suggested) ---------------------------

def _pl(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "PriorityLevelConfiguration",
            "metadata": {"name": name, "annotations": {AUTOUPDATE: "true"}}, "spec": spec}


def _limited(shares: int, lendable: int, queues: int, hand: int, qlen: int) -> dict[str, Any]:
    return {"type": "Limited", "limited": {
        "nominalConcurrencyShares": shares,
        "limitResponse": {"type": "Queue", "queuing": {"queues": queues, "handSize": hand, "queueLengthLimit": qlen}},
        "lendablePercent": lendable}}


def _fs(name: str, pl: str, precedence: int, distinguisher: str | None, *rules: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"priorityLevelConfiguration": {"name": pl}, "matchingPrecedence": precedence}
    if distinguisher:
        spec["distinguisherMethod"] = {"type": distinguisher}
    spec["rules"] = list(rules)
    return {"apiVersion": API_VERSION, "kind": "FlowSchema",
            "metadata": {"name": name, "annotations": {AUTOUPDATE: "true"}}, "spec": spec}


def _groups(*names: str) -> list[dict[str, Any]]:
    return [{"kind": "Group", "group": {"name": n}} for n in names]


def _users(*names: str) -> list[dict[str, Any]]:
    return [{"kind": "User", "user": {"name": n}} for n in names]


def _kube_system_sa(*names: str) -> list[dict[str, Any]]:
    return [{"kind": "ServiceAccount", "serviceAccount": {"name": n, "namespace": "kube-system"}} for n in names]


def _all(subjects: list[dict[str, Any]]) -> dict[str, Any]:
    """Every verb on every resource and non-resource URL."""
    return {"subjects": subjects,
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "clusterScope": True,
                               "namespaces": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}


def _rule(verbs: list[str], groups: list[str], resources: list[str], namespaces: list[str],
          cluster_scope: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if cluster_scope:
        out["clusterScope"] = True
    out["namespaces"] = namespaces
    return out


_EVERYONE = ("system:unauthenticated", "system:authenticated")
_LEADER_ELECTION = [_rule(["get", "create", "update"], [""], ["endpoints", "configmaps"], ["kube-system"]),
                    _rule(["get", "create", "update"], ["coordination.k8s.io"], ["leases"], ["*"])]

MANDATORY_PRIORITY_LEVELS = [
    _pl("exempt", {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}),
    _pl("catch-all", {"type": "Limited", "limited": {"nominalConcurrencyShares": 5,
                                                     "limitResponse": {"type": "Reject"}, "lendablePercent": 0}}),
]
MANDATORY_FLOW_SCHEMAS = [
    _fs("exempt", "exempt", 1, None, _all(_groups("system:masters"))),
    _fs("catch-all", "catch-all", 10000, "ByUser", _all(_groups(*_EVERYONE))),
]
SUGGESTED_PRIORITY_LEVELS = [
    _pl("system", _limited(30, 33, 64, 6, 50)),
    _pl("node-high", _limited(40, 25, 64, 6, 50)),
    _pl("leader-election", _limited(10, 0, 16, 4, 50)),
    _pl("workload-high", _limited(40, 50, 128, 6, 50)),
    _pl("workload-low", _limited(100, 90, 128, 6, 50)),
    _pl("global-default", _limited(20, 50, 128, 6, 50)),
]
SUGGESTED_FLOW_SCHEMAS = [
    _fs("system-nodes", "system", 500, "ByUser", _all(_groups("system:nodes"))),
    _fs("system-node-high", "node-high", 400, "ByUser", {
        "subjects": _groups("system:nodes"),
        "resourceRules": [_rule(["*"], [""], ["nodes", "nodes/status"], ["*"], True),
                          _rule(["*"], ["coordination.k8s.io"], ["leases"], ["*"])]}),
    _fs("probes", "exempt", 2, None, {
        "subjects": _groups(*_EVERYONE),
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}]}),
    _fs("system-leader-election", "leader-election", 100, "ByUser", {
        "subjects": _users("system:kube-controller-manager", "system:kube-scheduler") + _kube_system_sa("*"),
        "resourceRules": _LEADER_ELECTION}),
    _fs("workload-leader-election", "leader-election", 200, "ByUser", {
        "subjects": _kube_system_sa("*"),
        "resourceRules": [_rule(["get", "create", "update"], [""], ["endpoints", "configmaps"], ["*"]),
                          _LEADER_ELECTION[1]]}),
    _fs("endpoint-controller", "workload-high", 150, "ByUser", {
        "subjects": _users("system:kube-controller-manager")
        + _kube_system_sa("endpoint-controller", "endpointslicemirroring-controller"),
        "resourceRules": [_rule(["get", "create", "update"], [""], ["endpoints"], ["*"])]}),
    _fs("kube-controller-manager", "workload-high", 800, "ByNamespace", _all(_users("system:kube-controller-manager"))),
    _fs("kube-scheduler", "workload-high", 800, "ByNamespace", _all(_users("system:kube-scheduler"))),
    _fs("kube-system-service-accounts", "workload-high", 900, "ByNamespace", _all(_kube_system_sa("*"))),
    _fs("service-accounts", "workload-low", 9000, "ByUser", _all(_groups("system:serviceaccounts"))),
    _fs("global-default", "global-default", 9900, "ByUser", _all(_groups(*_EVERYONE))),
]
_MANDATORY_FS = {o["metadata"]["name"]: o["spec"] for o in MANDATORY_FLOW_SCHEMAS}
_MANDATORY_PL = {o["metadata"]["name"]: o["spec"] for o in MANDATORY_PRIORITY_LEVELS}


MANDATORY_NAMES = {"flowschemas": set(_MANDATORY_FS), "prioritylevelconfigurations": set(_MANDATORY_PL)}


def bootstrap_objects() -> list[tuple[str, dict[str, Any]]]:
    """(plural, object) of every configuration object the apiserver keeps, levels first."""
    return [("prioritylevelconfigurations", copy.deepcopy(o))
            for o in MANDATORY_PRIORITY_LEVELS + SUGGESTED_PRIORITY_LEVELS] + \
           [("flowschemas", copy.deepcopy(o)) for o in MANDATORY_FLOW_SCHEMAS + SUGGESTED_FLOW_SCHEMAS]


# -- validation helpers ----------------------------------------------------------------------

def _go(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[]string{" + ", ".join(f'"{v}"' for v in value) + "}"
    return str(value)


def _invalid(path: str, value: Any, msg: str) -> Cause:
    return errors.cause(path, f"Invalid value: {_go(value)}: {msg}")


def _required(path: str, msg: str = "") -> Cause:
    return errors.cause(path, f"Required value: {msg}" if msg else "Required value", "FieldValueRequired")


def _forbidden(path: str, msg: str) -> Cause:
    return errors.cause(path, f"Forbidden: {msg}", "FieldValueForbidden")


def _unsupported(path: str, value: Any, supported: tuple[str, ...]) -> Cause:
    return errors.cause(path, f"Unsupported value: {_go(value)}: supported values: "
                        + ", ".join(f'"{s}"' for s in supported), "FieldValueNotSupported")


def _verbs(verbs: list[str], path: str) -> list[Cause]:
    if not verbs:
        return [_required(path, "verbs must contain at least one value")]
    if "*" in verbs:
        return [_invalid(path, verbs, "if '*' is present, must not specify other verbs")] if len(verbs) > 1 else []
    if not set(verbs) <= set(VERBS):
        return [_unsupported(path, verbs, VERBS)]
    return []


def _url_path(p: str, path: str) -> Cause | None:
    if not p:
        return _invalid(path, p, "must not be empty")
    if p == "/":
        return None
    if not p.startswith("/"):
        return _invalid(path, p, "must start with slash")
    if " " in p:
        return _invalid(path, p, "must not contain white-space")
    if "//" in p:
        return _invalid(path, p, "must not contain double slash")
    stars = p.count("*")
    if stars > 1 or (stars == 1 and not p.endswith("/*")):
        return _invalid(path, p, "wildcard can only do suffix matching")
    return None


def _subject(s: dict[str, Any], path: str) -> list[Cause]:
    kind = s.get("kind")
    fields = {"ServiceAccount": "serviceAccount", "User": "user", "Group": "group"}
    if kind not in fields:
        return [_unsupported(f"{path}.kind", kind or "", SUBJECT_KINDS)]
    own = fields[kind]
    out: list[Cause] = []
    body = s.get(own)
    if body is None:
        out.append(_required(f"{path}.{own}", f"{own} is required when subject kind is '{kind}'"))
    elif kind == "ServiceAccount":
        if not body.get("name"):
            out.append(_required(f"{path}.{own}.name"))
        if not body.get("namespace"):
            out.append(_required(f"{path}.{own}.namespace", "must specify namespace for service account"))
    elif not body.get("name"):
        out.append(_required(f"{path}.{own}.name"))
    for other_kind, other in fields.items():
        if other != own and s.get(other) is not None:
            out.append(_forbidden(f"{path}.{other}", f"{other} is forbidden when subject kind is not '{other_kind}'"))
    return out


def _resource_rule(r: dict[str, Any], path: str) -> list[Cause]:
    out = _verbs(r.get("verbs") or [], f"{path}.verbs")
    for key, what in (("apiGroups", "api group"), ("resources", "resource")):
        vals = r.get(key) or []
        if not vals:
            out.append(_required(f"{path}.{key}", f"resource rules must supply at least one {what}"))
        elif len(vals) > 1 and "*" in vals:
            out.append(_invalid(f"{path}.{key}", vals, f"if '*' is present, must not specify other {what}s"))
    ns = r.get("namespaces") or []
    if not ns and not r.get("clusterScope"):
        out.append(_required(f"{path}.namespaces",
                             "resource rules that are not cluster scoped must supply at least one namespace"))
    elif "*" in ns:
        if len(ns) > 1:
            out.append(_invalid(f"{path}.namespaces", ns, "if '*' is present, must not specify other namespaces"))
    else:
        for i, n in enumerate(ns):
            for c in validate_dns_label(n, f"{path}.namespaces[{i}]"):  # "Invalid value: "x": <why>"
                why = c["message"].removeprefix(f'Invalid value: "{n}": ')
                out.append(_invalid(f"{path}.namespaces[{i}]", n, _NS_INTRO + why))
    return out


def _nonresource_rule(r: dict[str, Any], path: str) -> list[Cause]:
    out = _verbs(r.get("verbs") or [], f"{path}.verbs")
    urls = r.get("nonResourceURLs") or []
    if not urls:
        out.append(_required(f"{path}.nonResourceURLs", "nonResourceURLs must contain at least one value"))
    elif "*" in urls:
        if len(urls) > 1:
            out.append(_invalid(f"{path}.nonResourceURLs", urls,
                                "if '*' is present, must not specify other non-resource URLs"))
    else:
        out += [c for i, u in enumerate(urls) if (c := _url_path(u, f"{path}.nonResourceURLs[{i}]"))]
    return out


def _conditions(obj: Obj) -> list[Cause]:
    out: list[Cause] = []
    seen: set[str] = set()
    for i, c in enumerate((obj.get("status") or {}).get("conditions") or []):
        typ = c.get("type") or ""
        if not typ:
            out.append(_required(f"status.conditions[{i}].type", "must not be empty"))
        elif typ in seen:
            out.append(errors.cause(f"status.conditions[{i}].type", f'Duplicate value: "{typ}"', "FieldValueDuplicate"))
        seen.add(typ)
    return out


# -- the kinds ------------------------------------------------------------------------------

class FlowSchemaStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def validate(self, obj: Obj) -> list[Cause]:
        name = (obj.get("metadata") or {}).get("name") or ""
        spec = obj.get("spec") or {}
        out: list[Cause] = []
        mp = spec.get("matchingPrecedence")
        if isinstance(mp, int):
            if mp <= 0:
                out.append(_invalid("spec.matchingPrecedence", mp, "must be a positive value"))
            if mp > MAX_MATCHING_PRECEDENCE:
                out.append(_invalid("spec.matchingPrecedence", mp, f"must not be greater than {MAX_MATCHING_PRECEDENCE}"))
            if mp == 1 and name != "exempt":
                out.append(_invalid("spec.matchingPrecedence", mp, "only the schema named 'exempt' may have "
                                                                  "matchingPrecedence 1"))
        dm = spec.get("distinguisherMethod")
        if dm is not None and dm.get("type") not in DISTINGUISHERS:  # upstream shows the whole method, as Go
            shown = f'&flowcontrol.FlowDistinguisherMethod{{Type:"{dm.get("type") or ""}"}}'
            out.append(errors.cause("spec.distinguisherMethod.type", f"Unsupported value: {shown}: supported values: "
                                    + ", ".join(f'"{d}"' for d in DISTINGUISHERS), "FieldValueNotSupported"))
        pl = (spec.get("priorityLevelConfiguration") or {}).get("name") or ""
        if pl:
            out += [errors.cause("spec.priorityLevelConfiguration.name", c["message"])
                    for c in validate_dns_subdomain(pl, "spec.priorityLevelConfiguration.name")]
        else:
            out.append(_required("spec.priorityLevelConfiguration.name", "must reference a priority level"))
        for i, rule in enumerate(spec.get("rules") or []):
            path = f"spec.rules[{i}]"
            subjects = rule.get("subjects") or []
            if not subjects:
                out.append(_required(f"{path}.subjects", "subjects must contain at least one value"))
            for j, s in enumerate(subjects):
                out += _subject(s, f"{path}.subjects[{j}]")
            if not rule.get("resourceRules") and not rule.get("nonResourceRules"):
                out.append(_required(path, "at least one of resourceRules and nonResourceRules has to be non-empty"))
            for j, r in enumerate(rule.get("resourceRules") or []):
                out += _resource_rule(r, f"{path}.resourceRules[{j}]")
            for j, r in enumerate(rule.get("nonResourceRules") or []):
                out += _nonresource_rule(r, f"{path}.nonResourceRules[{j}]")
        if name in _MANDATORY_FS and not _same_spec(spec, _MANDATORY_FS[name]):
            out.append(_not_fixed("FlowSchemaSpec", name))
        return out + _conditions(obj)

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        return _conditions(new)


def default_priority_level(spec: dict[str, Any]) -> None:
    """SetDefaults for v1: shares 30 (exempt: 0), lendablePercent 0, queuing 64/8/50."""
    if spec.get("type") == "Exempt":
        ex = spec.setdefault("exempt", {})
        ex.setdefault("nominalConcurrencyShares", 0)
        ex.setdefault("lendablePercent", 0)
    lim = spec.get("limited")
    if isinstance(lim, dict):
        lim.setdefault("nominalConcurrencyShares", 30)
        lim.setdefault("lendablePercent", 0)
        lr = lim.get("limitResponse") or {}
        if lr.get("type") == "Queue":
            q = lr.setdefault("queuing", {})
            q.setdefault("queues", 64)
            q.setdefault("handSize", 8)
            q.setdefault("queueLengthLimit", 50)


def _entropy_bits(deck: int, hand: int) -> int:
    """shufflesharding.RequiredEntropyBits: ceil(log2(deck^hand))."""
    return math.ceil(hand * math.log2(deck)) if deck > 0 else 0


class PriorityLevelConfigurationStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            default_priority_level(spec)

    def validate(self, obj: Obj) -> list[Cause]:
        name = (obj.get("metadata") or {}).get("name") or ""
        spec = obj.get("spec") or {}
        typ = spec.get("type") or ""
        out: list[Cause] = []
        if (name == "exempt") != (typ == "Exempt"):
            out.append(_invalid("spec.type", typ, "type must be 'Exempt' if and only if name is 'exempt'"))
        if typ == "Exempt":
            if spec.get("limited") is not None:
                out.append(_forbidden("spec.limited", "must be nil if the type is not Limited"))
            ex = spec.get("exempt") or {}
            out += _shares(ex, "spec.exempt")
        elif typ == "Limited":
            lim = spec.get("limited")
            if spec.get("exempt") is not None:
                out.append(_forbidden("spec.exempt", "must be nil if the type is Limited"))
            if lim is None:
                out.append(_required("spec.limited", "must not be empty when type is Limited"))
            else:
                out += _shares(lim, "spec.limited")
                borrow = lim.get("borrowingLimitPercent")
                if isinstance(borrow, int) and borrow < 0:
                    out.append(_invalid("spec.limited.borrowingLimitPercent", borrow,
                                        "if specified, must be a non-negative integer"))
                out += _limit_response(lim.get("limitResponse") or {}, "spec.limited.limitResponse")
        else:
            out.append(_unsupported("spec.type", typ, PL_TYPES))
        if name in _MANDATORY_PL and not _same_spec(spec, _MANDATORY_PL[name]):
            out.append(_not_fixed("PriorityLevelConfigurationSpec", name))
        return out + _conditions(obj)

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        return _conditions(new)


def _shares(cfg: dict[str, Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    shares = cfg.get("nominalConcurrencyShares")
    if isinstance(shares, int) and shares < 0:
        out.append(_invalid(f"{path}.nominalConcurrencyShares", shares, "must be a non-negative integer"))
    lend = cfg.get("lendablePercent")
    if isinstance(lend, int) and not 0 <= lend <= 100:
        out.append(_invalid(f"{path}.lendablePercent", lend, "must be between 0 and 100, inclusive"))
    return out


def _limit_response(lr: dict[str, Any], path: str) -> list[Cause]:
    typ = lr.get("type") or ""
    q = lr.get("queuing")
    if typ == "Reject":
        return [_forbidden(f"{path}.queuing", "must be nil if limited.limitResponse.type is not Limited")] \
            if q is not None else []
    if typ != "Queue":
        return [_unsupported(f"{path}.type", typ, LIMIT_RESPONSES)]
    if q is None:
        return [_required(f"{path}.queuing", "must not be empty if limited.limitResponse.type is Limited")]
    out: list[Cause] = []
    qp = f"{path}.queuing"
    qlen, queues, hand = q.get("queueLengthLimit", 0), q.get("queues", 0), q.get("handSize", 0)
    if qlen <= 0:
        out.append(_invalid(f"{qp}.queueLengthLimit", qlen, "must be positive"))
    if queues <= 0:
        out.append(_invalid(f"{qp}.queues", queues, "must be positive"))
    elif queues > MAX_QUEUES:
        out.append(_invalid(f"{qp}.queues", queues, f"must not be greater than {MAX_QUEUES}"))
    if hand <= 0:
        out.append(_invalid(f"{qp}.handSize", hand, "must be positive"))
    elif hand > queues:
        out.append(_invalid(f"{qp}.handSize", hand, f"should not be greater than queues ({queues})"))
    elif _entropy_bits(queues, hand) > MAX_HASH_BITS:
        out.append(_invalid(f"{qp}.handSize", hand, f"required entropy bits of deckSize {queues} and handSize "
                                                    f"{hand} should not be greater than {MAX_HASH_BITS}"))
    return out


def _same_spec(spec: dict[str, Any], fixed: dict[str, Any]) -> bool:
    """Semantic equality with the fixed spec (absent and empty lists alike)."""
    def norm(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items() if x not in (None, [], False)}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v
    return bool(norm(spec) == norm(fixed))


def _not_fixed(go_type: str, name: str) -> Cause:
    """A mandatory object's spec changed. Upstream prints the Go struct (%#v, with pointer
    addresses) as the value; its type name stands for it here."""
    return errors.cause("spec", f"Invalid value: flowcontrol.{go_type}{{...}}: spec of '{name}' must equal the "
                                "fixed value")


RESOURCES = [
    ResourceInfo(GROUP, "v1", "FlowSchema", "flowschemas", False, "io.k8s.api.flowcontrol.v1.FlowSchema",
                 subresources=("status",), strategy=FlowSchemaStrategy()),
    ResourceInfo(GROUP, "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations", False,
                 "io.k8s.api.flowcontrol.v1.PriorityLevelConfiguration", subresources=("status",),
                 strategy=PriorityLevelConfigurationStrategy()),
]
