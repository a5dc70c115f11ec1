"""admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration and
MutatingWebhookConfiguration: defaults (pkg/apis/admissionregistration/v1/
defaults.go) and validation (pkg/apis/admissionregistration/validation), with
upstream's field paths and wording. The apiserver calls the webhooks they name
(kybern/apiserver/admission_webhooks.py)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import DNS1123_SUBDOMAIN, Cause, Obj, Strategy, validate_label_selector, validate_labels
from kybern.machinery import errors

GROUP = "admissionregistration.k8s.io"

FAILURE_POLICIES = ("Fail", "Ignore")
MATCH_POLICIES = ("Equivalent", "Exact")
NO_SIDE_EFFECTS = ("None", "NoneOnDryRun")
OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
REINVOCATION_POLICIES = ("IfNeeded", "Never")
SCOPES = ("*", "Cluster", "Namespaced")
REVIEW_VERSIONS = ("v1", "v1beta1")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _shown(v: Any) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):  # field.Invalid shows other values with Go's %#v
        return "[]string{" + ", ".join(f'"{x}"' for x in v) + "}"
    return str(v)


def _invalid(field: str, value: Any, why: str) -> Cause:
    return errors.cause(field, f"Invalid value: {_shown(value)}: {why}")


def _required(field: str, why: str = "") -> Cause:
    return errors.cause(field, "Required value" + (f": {why}" if why else ""), "FieldValueRequired")


def _not_supported(field: str, value: Any, supported: tuple[str, ...]) -> Cause:
    return errors.cause(field, f"Unsupported value: {_shown(value)}: supported values: "
                        + ", ".join(f'"{s}"' for s in supported), "FieldValueNotSupported")


# -- defaults ------------------------------------------------------------------
def _default_hook(hook: Obj, mutating: bool) -> None:
    hook.setdefault("failurePolicy", "Fail")
    hook.setdefault("matchPolicy", "Equivalent")
    if hook.get("namespaceSelector") is None:
        hook["namespaceSelector"] = {}
    if hook.get("objectSelector") is None:
        hook["objectSelector"] = {}
    hook.setdefault("timeoutSeconds", 10)
    if mutating:
        hook.setdefault("reinvocationPolicy", "Never")
    for rule in hook.get("rules") or []:
        if isinstance(rule, dict):
            rule.setdefault("scope", "*")
    svc = (hook.get("clientConfig") or {}).get("service")
    if isinstance(svc, dict):
        svc.setdefault("port", 443)


# -- validation ----------------------------------------------------------------
def _validate_resources(resources: list[Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    if not resources:
        out.append(_required(path))
    wild_sub: set[str] = set()   # x/*
    wild_res: set[str] = set()   # */x
    double = single = plain = False
    for i, rs in enumerate(resources):
        if rs == "":
            out.append(_required(f"{path}[{i}]"))
            continue
        if rs == "*/*":
            double = True
        if rs == "*":
            single = True
        if "/" not in rs:
            plain = rs != "*"
            continue
        res, sub = rs.split("/", 1)
        if res in wild_sub:
            out.append(_invalid(f"{path}[{i}]", rs, f"if '{res}/*' is present, must not specify {rs}"))
        if sub in wild_res:
            out.append(_invalid(f"{path}[{i}]", rs, f"if '*/{sub}' is present, must not specify {rs}"))
        if sub == "*":
            wild_sub.add(res)
        if res == "*":
            wild_res.add(sub)
    if len(resources) > 1 and double:
        out.append(_invalid(path, resources, "if '*/*' is present, must not specify other resources"))
    if single and plain:
        out.append(_invalid(path, resources, "if '*' is present, must not specify other resources without "
                                             "subresources"))
    return out


def _validate_rule(rule: Obj, path: str) -> list[Cause]:
    out: list[Cause] = []
    ops = rule.get("operations") or []
    if not ops:
        out.append(_required(f"{path}.operations"))
    if len(ops) > 1 and "*" in ops:
        out.append(errors.cause(f"{path}.operations", "Invalid value: []admissionregistration.OperationType{"
                                + ", ".join(f'"{o}"' for o in ops) + "}: if '*' is present, must not specify "
                                "other operations"))
    for i, op in enumerate(ops):
        if op not in OPERATIONS:
            out.append(_not_supported(f"{path}.operations[{i}]", op, OPERATIONS))
    groups = rule.get("apiGroups") or []
    if not groups:
        out.append(_required(f"{path}.apiGroups"))
    if len(groups) > 1 and "*" in groups:
        out.append(_invalid(f"{path}.apiGroups", groups, "if '*' is present, must not specify other API groups"))
    versions = rule.get("apiVersions") or []
    if not versions:
        out.append(_required(f"{path}.apiVersions"))
    if len(versions) > 1 and "*" in versions:
        out.append(_invalid(f"{path}.apiVersions", versions,
                            "if '*' is present, must not specify other API versions"))
    for i, v in enumerate(versions):
        if v == "":
            out.append(_required(f"{path}.apiVersions[{i}]"))
    out += _validate_resources(list(rule.get("resources") or []), f"{path}.resources")
    scope = rule.get("scope")
    if scope is not None and scope not in SCOPES:
        out.append(_not_supported(f"{path}.scope", scope, SCOPES))
    return out


def _validate_url(url: Any, path: str) -> list[Cause]:
    try:
        u = urlsplit(str(url))
    except ValueError as e:
        return [errors.cause(path, f"Invalid value: {_shown(url)}: url must be a valid URL: {e}")]
    out: list[Cause] = []
    if u.scheme != "https":
        out.append(_invalid(path, u.scheme, "'https' is the only allowed URL scheme"))
    if not u.netloc or not u.hostname:
        out.append(_invalid(path, u.netloc, "host must be specified"))
    if "@" in u.netloc:
        out.append(_invalid(path, u.netloc.rsplit("@", 1)[0], "user information is not permitted in the URL"))
    if u.fragment or str(url).endswith("#"):
        out.append(_invalid(path, u.fragment, "fragments are not permitted in the URL"))
    if u.query or str(url).endswith("?"):
        out.append(_invalid(path, u.query, "query parameters are not permitted in the URL"))
    return out


def _validate_service(svc: Obj, path: str) -> list[Cause]:
    out: list[Cause] = []
    if not svc.get("name"):
        out.append(_required(f"{path}.name", "service name is required"))
    if not svc.get("namespace"):
        out.append(_required(f"{path}.namespace", "service namespace is required"))
    port = svc.get("port")
    if isinstance(port, int) and not 1 <= port <= 65535:
        out.append(_invalid(f"{path}.port", port, "port is not valid: must be between 1 and 65535, inclusive"))
    p = svc.get("path")
    if not p or p == "/":
        return out
    if p == "//":
        out.append(_invalid(f"{path}.path", p, "segment[0] may not be empty"))
        return out
    if not p.startswith("/"):
        out.append(_invalid(f"{path}.path", p, "must start with a '/'"))
    steps = p[1:].removesuffix("/").split("/")
    for i, step in enumerate(steps):
        if not step:
            out.append(_invalid(f"{path}.path", p, f"segment[{i}] may not be empty"))
    return out


# what a webhook's matchConditions may name (upstream's admission CEL environment)
MATCH_CONDITION_VARS = frozenset({"object", "oldObject", "request", "authorizer"})


def _validate_match_conditions(conds: list[Any], path: str,
                               variables: frozenset[str] = MATCH_CONDITION_VARS) -> list[Cause]:
    """validateMatchConditions: shape, and each expression compiles (kybern.api.cel)."""
    out: list[Cause] = []
    if len(conds) > 64:
        out.append(errors.cause(path, f"Too many: {len(conds)}: must have at most 64 items", "FieldValueTooMany"))
    names: set[str] = set()
    for i, c in enumerate(conds):
        c = c if isinstance(c, dict) else {}
        expr = str(c.get("expression") or "")
        if not expr.strip():
            out.append(_required(f"{path}[{i}].expression"))
        else:
            from kybern.api import cel  # imported on first use (cel-python's start-up cost)

            try:
                cel.compile(expr, variables)
            except cel.Unsupported:
                pass  # accepted, not evaluated (docs/admission.md)
            except cel.CompileError as e:
                out.append(_invalid(f"{path}[{i}].expression", expr, f"compilation failed: {e}"))
        name = c.get("name") or ""
        if not name:
            out.append(_required(f"{path}[{i}].name"))
        else:
            out += validate_labels({name: ""}, f"{path}[{i}].name")
            if name in names:
                out.append(errors.cause(f"{path}[{i}].name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
            names.add(name)
    return out


def _validate_hook(hook: Obj, path: str, mutating: bool) -> list[Cause]:
    out: list[Cause] = []
    name = hook.get("name") or ""
    if not name:
        out.append(_required(f"{path}.name"))
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        out.append(_invalid(f"{path}.name", name, "a lowercase RFC 1123 subdomain must consist of lower case "
                            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                            "character (e.g. 'example.com', regex used for validation is "
                            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"))
    elif len(name.split(".")) < 3:
        out.append(_invalid(f"{path}.name", name, "should be a domain with at least three segments separated by "
                            "dots"))
    for i, rule in enumerate(hook.get("rules") or []):
        out += _validate_rule(rule if isinstance(rule, dict) else {}, f"{path}.rules[{i}]")
    fp = hook.get("failurePolicy")
    if fp is not None and fp not in FAILURE_POLICIES:
        out.append(_not_supported(f"{path}.failurePolicy", fp, FAILURE_POLICIES))
    mp = hook.get("matchPolicy")
    if mp is not None and mp not in MATCH_POLICIES:
        out.append(_not_supported(f"{path}.matchPolicy", mp, MATCH_POLICIES))
    se = hook.get("sideEffects")
    if se is None:
        out.append(_required(f"{path}.sideEffects", "must specify one of None, NoneOnDryRun"))
    elif se not in NO_SIDE_EFFECTS:
        out.append(_not_supported(f"{path}.sideEffects", se, NO_SIDE_EFFECTS))
    ts = hook.get("timeoutSeconds")
    if isinstance(ts, int) and not 1 <= ts <= 30:
        out.append(_invalid(f"{path}.timeoutSeconds", ts, "the timeout value must be between 1 and 30 seconds"))
    out += validate_label_selector(hook.get("namespaceSelector"), f"{path}.namespaceSelector")
    out += validate_label_selector(hook.get("objectSelector"), f"{path}.objectSelector")
    if mutating:
        rp = hook.get("reinvocationPolicy")
        if rp is not None and rp not in REINVOCATION_POLICIES:
            out.append(_not_supported(f"{path}.reinvocationPolicy", rp, REINVOCATION_POLICIES))
    cc = hook.get("clientConfig") or {}
    url, svc = cc.get("url"), cc.get("service")
    if (url is None) == (svc is None):
        out.append(_required(f"{path}.clientConfig", "exactly one of url or service is required"))
    elif url is not None:
        out += _validate_url(url, f"{path}.clientConfig.url")
    else:
        out += _validate_service(svc, f"{path}.clientConfig.service")
    out += _validate_match_conditions(list(hook.get("matchConditions") or []), f"{path}.matchConditions")
    return out


def _validate_review_versions(versions: list[Any], path: str) -> list[Cause]:
    if not versions:
        return [_required(path, "must specify one of v1, v1beta1")]
    out: list[Cause] = []
    seen: set[str] = set()
    for i, v in enumerate(versions):
        if v in seen:
            out.append(_invalid(f"{path}[{i}]", v, "duplicate version"))
            continue
        seen.add(v)
        if len(v) > 63 or not _DNS1035.match(v):
            out.append(_invalid(f"{path}[{i}]", v, "a DNS-1035 label must consist of lower case alphanumeric "
                                "characters or '-', start with an alphabetic character, and end with an "
                                "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
                                "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"))
    if not seen & set(REVIEW_VERSIONS):
        out.append(_invalid(path, versions, "must include at least one of v1, v1beta1"))
    return out


_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _base64_error(value: str) -> str | None:
    """Go's encoding/base64 StdEncoding complaint about a []byte field (the input
    byte its decodeQuantum names), or None."""
    si, n = 0, len(value)
    while True:
        j = 0
        while j < 4:
            if si == n:
                return None if j == 0 else f"illegal base64 data at input byte {si - j}"
            c = value[si]
            si += 1
            if c in _B64_ALPHABET:
                j += 1
                continue
            if c in "\r\n":
                continue
            if c != "=" or j < 2:
                return f"illegal base64 data at input byte {si - 1}"
            if j == 2:  # "==" expected
                while si < n and value[si] in "\r\n":
                    si += 1
                if si == n:
                    return f"illegal base64 data at input byte {n}"
                if value[si] != "=":
                    return f"illegal base64 data at input byte {si - 1}"
                si += 1
            while si < n and value[si] in "\r\n":
                si += 1
            return f"illegal base64 data at input byte {si}" if si < n else None


class WebhookConfigurationStrategy(Strategy):
    def __init__(self, mutating: bool) -> None:
        self.mutating = mutating

    def default(self, obj: Obj) -> None:
        for hook in obj.get("webhooks") or []:
            if isinstance(hook, dict):
                ca = (hook.get("clientConfig") or {}).get("caBundle")
                why = _base64_error(ca) if isinstance(ca, str) else None
                if why:  # a []byte the Go decoder refuses: 400 before any validation
                    kind = obj.get("kind") or ("MutatingWebhookConfiguration" if self.mutating else
                                               "ValidatingWebhookConfiguration")
                    raise errors.bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: {why}')
                _default_hook(hook, self.mutating)

    def validate(self, obj: Obj) -> list[Cause]:
        out: list[Cause] = []
        names: set[str] = set()
        for i, hook in enumerate(obj.get("webhooks") or []):
            path = f"webhooks[{i}]"
            hook = hook if isinstance(hook, dict) else {}
            out += _validate_hook(hook, path, self.mutating)
            out += _validate_review_versions(list(hook.get("admissionReviewVersions") or []),
                                             f"{path}.admissionReviewVersions")
            name = hook.get("name")
            if name:
                if name in names:
                    out.append(errors.cause(f"{path}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
                names.add(name)
        return out


VALIDATING = ResourceInfo(GROUP, "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", False,
                          "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration",
                          categories=("api-extensions",), strategy=WebhookConfigurationStrategy(False))
MUTATING = ResourceInfo(GROUP, "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False,
                        "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration",
                        categories=("api-extensions",), strategy=WebhookConfigurationStrategy(True))



# -- ValidatingAdmissionPolicy and its bindings -----------------------------------------
POLICY_VARS = frozenset({"object", "oldObject", "request", "params", "namespaceObject", "authorizer", "variables"})
POLICY_REASONS = ("Unauthorized", "Forbidden", "Invalid", "RequestEntityTooLarge")
VALIDATION_ACTIONS = ("Audit", "Deny", "Warn")
PARAM_ACTIONS = ("Allow", "Deny")


def _default_match_resources(mr: Any) -> None:
    if not isinstance(mr, dict):
        return
    mr.setdefault("matchPolicy", "Equivalent")
    if mr.get("namespaceSelector") is None:
        mr["namespaceSelector"] = {}
    if mr.get("objectSelector") is None:
        mr["objectSelector"] = {}
    for key in ("resourceRules", "excludeResourceRules"):
        for rule in mr.get(key) or []:
            if isinstance(rule, dict):
                rule.setdefault("scope", "*")


def _validate_match_resources(mr: Any, path: str, *, policy: bool) -> list[Cause]:
    out: list[Cause] = []
    if not isinstance(mr, dict):
        return [_required(path)] if policy else []
    rules = mr.get("resourceRules") or []
    if policy and not rules:
        out.append(_required(f"{path}.resourceRules"))
    for key in ("resourceRules", "excludeResourceRules"):
        for i, rule in enumerate(mr.get(key) or []):
            out += _validate_rule(rule if isinstance(rule, dict) else {}, f"{path}.{key}[{i}]")
    mp = mr.get("matchPolicy")
    if mp is not None and mp not in MATCH_POLICIES:
        out.append(_not_supported(f"{path}.matchPolicy", mp, MATCH_POLICIES))
    out += validate_label_selector(mr.get("namespaceSelector"), f"{path}.namespaceSelector")
    out += validate_label_selector(mr.get("objectSelector"), f"{path}.objectSelector")
    return out


def _compiles(expr: Any, path: str, variables: frozenset[str]) -> list[Cause]:
    text = str(expr or "")
    if not text.strip():
        return [_required(path)]
    from kybern.api import cel  # imported on first use (cel-python's start-up cost)

    try:
        cel.compile(text, variables)
    except cel.Unsupported:
        pass  # accepted, not evaluated (docs/admission.md)
    except cel.CompileError as e:
        return [_invalid(path, text, f"compilation failed: {e}")]
    return []


class PolicyStrategy(Strategy):
    """ValidatingAdmissionPolicy: defaults and validation (upstream's
    ValidateValidatingAdmissionPolicy, the common checks; every expression must
    compile)."""
    has_status = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("failurePolicy", "Fail")
            _default_match_resources(spec.get("matchConstraints"))

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        out: list[Cause] = []
        fp = spec.get("failurePolicy")
        if fp is not None and fp not in FAILURE_POLICIES:
            out.append(_not_supported("spec.failurePolicy", fp, FAILURE_POLICIES))
        pk = spec.get("paramKind")
        if isinstance(pk, dict):
            if not pk.get("apiVersion"):
                out.append(_required("spec.paramKind.apiVersion"))
            if not pk.get("kind"):
                out.append(_required("spec.paramKind.kind"))
        out += _validate_match_resources(spec.get("matchConstraints"), "spec.matchConstraints", policy=True)
        validations = spec.get("validations") or []
        if not validations and not spec.get("auditAnnotations"):
            out.append(_required("spec.validations", "validations or auditAnnotations must contain at least one "
                                                     "item"))
        names: set[str] = set()
        for i, var in enumerate(spec.get("variables") or []):
            var = var if isinstance(var, dict) else {}
            p = f"spec.variables[{i}]"
            name = var.get("name") or ""
            if not name:
                out.append(_required(f"{p}.name"))
            elif not re.fullmatch(r"[_a-zA-Z][_a-zA-Z0-9]*", name):
                out.append(_invalid(f"{p}.name", name, "name is not a valid CEL identifier"))
            names.add(name)
            out += _compiles(var.get("expression"), f"{p}.expression", POLICY_VARS)
        for i, v in enumerate(validations):
            v = v if isinstance(v, dict) else {}
            p = f"spec.validations[{i}]"
            out += _compiles(v.get("expression"), f"{p}.expression", POLICY_VARS)
            if v.get("messageExpression"):
                out += _compiles(v.get("messageExpression"), f"{p}.messageExpression", POLICY_VARS)
            msg = v.get("message")
            if isinstance(msg, str) and "\n" in msg:
                out.append(_invalid(f"{p}.message", msg, "message must not contain line breaks"))
            reason = v.get("reason")
            if reason is not None and reason not in POLICY_REASONS:
                out.append(_not_supported(f"{p}.reason", reason, POLICY_REASONS))
        for i, a in enumerate(spec.get("auditAnnotations") or []):
            a = a if isinstance(a, dict) else {}
            if not a.get("key"):
                out.append(_required(f"spec.auditAnnotations[{i}].key"))
            out += _compiles(a.get("valueExpression"), f"spec.auditAnnotations[{i}].valueExpression", POLICY_VARS)
        out += _validate_match_conditions(list(spec.get("matchConditions") or []), "spec.matchConditions",
                                          POLICY_VARS)
        return out


class BindingStrategy(Strategy):
    """ValidatingAdmissionPolicyBinding (ValidateValidatingAdmissionPolicyBinding)."""

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            _default_match_resources(spec.get("matchResources"))

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        out: list[Cause] = []
        if not spec.get("policyName"):
            out.append(_required("spec.policyName"))
        actions = spec.get("validationActions") or []
        if not actions:
            out.append(_required("spec.validationActions", "at least one validation action is required"))
        seen: set[str] = set()
        for i, a in enumerate(actions):
            if a not in VALIDATION_ACTIONS:
                out.append(_not_supported(f"spec.validationActions[{i}]", a, VALIDATION_ACTIONS))
            elif a in seen:
                out.append(errors.cause(f"spec.validationActions[{i}]", f'Duplicate value: "{a}"',
                                        "FieldValueDuplicate"))
            seen.add(a)
        if "Deny" in seen and "Warn" in seen:
            out.append(_invalid("spec.validationActions", actions, "must not contain both Deny and Warn "
                                "(repeating the same validation failure information in the API response and "
                                "headers serves no purpose)"))
        pr = spec.get("paramRef")
        if isinstance(pr, dict):
            if pr.get("name") and pr.get("selector") is not None:
                out.append(errors.cause("spec.paramRef.name", "Forbidden: name and selector are mutually exclusive",
                                        "FieldValueForbidden"))
            if not pr.get("name") and pr.get("selector") is None:
                out.append(_required("spec.paramRef", "one of name or selector must be specified"))
            act = pr.get("parameterNotFoundAction")
            if act is None:
                out.append(_required("spec.paramRef.parameterNotFoundAction"))
            elif act not in PARAM_ACTIONS:
                out.append(_not_supported("spec.paramRef.parameterNotFoundAction", act, PARAM_ACTIONS))
        out += _validate_match_resources(spec.get("matchResources"), "spec.matchResources", policy=False)
        return out


POLICY = ResourceInfo(GROUP, "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", False,
                      "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicy",
                      categories=("api-extensions",), subresources=("status",), strategy=PolicyStrategy())
BINDING = ResourceInfo(GROUP, "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings",
                       False, "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicyBinding",
                       categories=("api-extensions",), strategy=BindingStrategy())

RESOURCES = [VALIDATING, MUTATING, POLICY, BINDING]
