"""ValidatingAdmissionPolicy: the ValidatingAdmissionPolicy admission plugin
(k8s.io/apiserver pkg/admission/plugin/policy/validating), CEL policies that run
in the apiserver instead of a webhook.

Each ValidatingAdmissionPolicyBinding names a policy; a write the policy's
matchConstraints (and the binding's matchResources, when set) match, whose
matchConditions are all true, is checked against the policy's validations with
`object`, `oldObject`, `request`, `params`, `namespaceObject`, `authorizer` and
`variables`. A failing validation (or, under failurePolicy Fail, one that cannot
run) is acted on by the binding's validationActions: Deny fails the request
(`ValidatingAdmissionPolicy 'P' with binding 'B' denied request: MESSAGE`, with
the validation's reason: 422 Invalid by default, 403 Forbidden, 401, 413), Warn
adds a Warning header, Audit is accepted (kybern has no audit log).

Policies and bindings are read from the watch cache, compiled once per stored
version, and the plugin runs only when a binding is stored (kybern.apiserver.
admission_webhooks calls it after the mutating webhooks, before the validating
ones, as upstream orders the plugins).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kybern.api import admissionregistration as ar
from kybern.apiserver import admission_webhooks as aw
from kybern.apiserver.store import Predicate, key_prefix
from kybern.machinery import errors, selectors

if TYPE_CHECKING:
    from kybern.api.registry import ResourceInfo

# kybern.api.cel (cel-python) is imported when the first policy is compiled:
# its start-up cost is not paid by clusters without policies

log = logging.getLogger(__name__)
Obj = dict[str, Any]

POLICY_PREFIX = key_prefix(ar.POLICY)
BINDING_PREFIX = key_prefix(ar.BINDING)
REASON_CODES = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}
VARS = ar.POLICY_VARS


UNSUPPORTED = object()  # an expression beyond cel-python: not evaluated (docs/admission.md)


def _program(expr: Any) -> Any:
    """The compiled program; None when it does not compile; UNSUPPORTED."""
    from kybern.api import cel

    try:
        return cel.compile(str(expr or ""), VARS)
    except cel.Unsupported as e:
        log.warning("CEL expression %r is not evaluated: %s", expr, e)
        return UNSUPPORTED
    except cel.CompileError:
        return None


class Policy:
    """One stored policy, compiled."""

    def __init__(self, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        self.name: str = obj["metadata"]["name"]
        self.spec = spec
        self.failure_policy = spec.get("failurePolicy") or "Fail"
        self.match: Obj = spec.get("matchConstraints") or {}
        self.param_kind: Obj | None = spec.get("paramKind")
        self.variables = [(str(v.get("name") or ""), str(v.get("expression") or ""), _program(v.get("expression")))
                          for v in spec.get("variables") or [] if isinstance(v, dict)]
        # an unsupported condition is taken as true, an unsupported validation as passed
        self.conditions = [(str(c.get("expression") or ""), _program(c.get("expression")))
                           for c in spec.get("matchConditions") or [] if isinstance(c, dict)]
        self.conditions = [c for c in self.conditions if c[1] is not UNSUPPORTED]
        self.validations = [(str(v.get("expression") or ""), _program(v.get("expression")), str(v.get("message") or ""),
                             _program(v.get("messageExpression")) if v.get("messageExpression") else None,
                             v.get("reason"))
                            for v in spec.get("validations") or [] if isinstance(v, dict)]
        self.validations = [(e, p if p is not None else None, m, mp if mp is not UNSUPPORTED else None, r)
                            for e, p, m, mp, r in self.validations if p is not UNSUPPORTED]


class _Decision:
    def __init__(self, action: str, message: str, reason: str | None) -> None:
        self.action, self.message, self.reason = action, message, reason


class Policies:
    def __init__(self, webhooks: aw.Webhooks) -> None:
        self.webhooks = webhooks
        self.server = webhooks.server
        self._cache: tuple[Any, list[tuple[Policy, Obj]]] | None = None

    def configured(self) -> bool:
        rc = self.server.watch_cache.resources.get(BINDING_PREFIX)
        return rc is not None and bool(rc.objects)

    def pairs(self) -> list[tuple[Policy, Obj]]:
        """(policy, binding) for every binding whose policy exists, by binding name."""
        res = self.server.watch_cache.resources
        prc, brc = res.get(POLICY_PREFIX), res.get(BINDING_PREFIX)
        if brc is None or not brc.objects or prc is None or not prc.objects:
            return []
        sig = (tuple(sorted((k, e.rv) for k, e in prc.objects.items())),
               tuple(sorted((k, e.rv) for k, e in brc.objects.items())))
        if self._cache is not None and self._cache[0] == sig:
            return self._cache[1]
        policies = {}
        for e in prc.objects.values():
            obj = e.decode()
            policies[obj["metadata"]["name"]] = Policy(obj)
        out = []
        for key in sorted(brc.objects):
            b = brc.objects[key].decode()
            p = policies.get((b.get("spec") or {}).get("policyName") or "")
            if p is not None:
                out.append((p, b))
        self._cache = (sig, out)
        return out

    # -- admission ---------------------------------------------------------------
    async def validate(self, a: aw._Attributes, warnings: list[str]) -> None:
        """Every binding's decisions; warnings for Warn, the first Deny fails the request."""
        denied: list[tuple[Policy, Obj, _Decision]] = []
        for policy, binding in self.pairs():
            sent = await self._match(policy.match, a, policy=True)
            if sent is None:
                continue
            mr = (binding.get("spec") or {}).get("matchResources")
            if mr and (mr.get("resourceRules") or mr.get("excludeResourceRules") or mr.get("namespaceSelector")
                       or mr.get("objectSelector")) and await self._match(mr, a, policy=False) is None:
                continue
            actions = (binding.get("spec") or {}).get("validationActions") or []
            for d in await self._decisions(policy, binding, sent):
                if d.action != "Deny":
                    continue
                if "Warn" in actions:
                    warnings.append(f"Validation failed for ValidatingAdmissionPolicy '{policy.name}' with binding "
                                    f"'{binding['metadata']['name']}': {d.message}")
                if "Deny" in actions:
                    denied.append((policy, binding, d))
        if denied:
            policy, binding, d = denied[0]
            raise _denied(a, f"ValidatingAdmissionPolicy '{policy.name}' with binding "
                             f"'{binding['metadata']['name']}' denied request: {d.message}", d.reason)

    async def _match(self, mr: Obj, a: aw._Attributes, *, policy: bool) -> aw._Attributes | None:
        """matchConstraints / matchResources: resource rules (and resourceNames), not
        excluded, selectors; with matchPolicy Equivalent another served version."""
        rules = mr.get("resourceRules") or []

        def hit(rule: Obj, info: ResourceInfo) -> bool:
            names = rule.get("resourceNames") or []
            return aw._rule_matches(rule, a, info) and (not names or a.name in names)

        if rules:
            sent: aw._Attributes | None = a if any(hit(r, a.info) for r in rules) else None
            if sent is None and mr.get("matchPolicy", "Equivalent") == "Equivalent":
                for other in self.webhooks._other_versions(a.info):
                    if any(hit(r, other) for r in rules):
                        sent = a.as_version(other)
                        break
            if sent is None:
                return None
        else:
            sent = a  # a binding without resourceRules does not narrow the resources
        if any(hit(r, a.info) for r in mr.get("excludeResourceRules") or []):
            return None
        if not aw._object_selector_matches(mr.get("objectSelector"), a):
            return None
        if not await self.webhooks._namespace_matches(mr.get("namespaceSelector"), a):
            return None
        return sent

    async def _decisions(self, policy: Policy, binding: Obj, a: aw._Attributes) -> list[_Decision]:
        from kybern.api import cel

        fail = policy.failure_policy != "Ignore"

        def error(msg: str) -> list[_Decision]:
            return [_Decision("Deny", msg, None)] if fail else []

        params: list[Any] = [None]
        if policy.param_kind:
            try:
                found = await self._params(policy.param_kind, (binding.get("spec") or {}).get("paramRef"), a)
            except errors.StatusError as e:
                return error(f"failed to configure binding: {e.message}")
            if found is None:
                return [_Decision("Deny", "no params found for policy binding with `Deny` "
                                  "parameterNotFoundAction", None)]
            params = found
        base = {"object": cel.to_cel(a.obj), "oldObject": cel.to_cel(a.old),
                "request": cel.to_cel(_request(a)), "namespaceObject": cel.to_cel(await self._namespace(a)),
                "authorizer": cel.authorizer({"group": a.info.group, "resource": a.info.plural,
                                              "subresource": a.subresource or "", "namespace": a.namespace,
                                              "name": a.name}, aw._cel_check(self.server, a))}
        out: list[_Decision] = []
        for param in params:
            act = {**base, "params": cel.to_cel(param)}
            act["variables"] = _variables(policy, act)
            matched, errs = cel.match_conditions(policy.conditions, act)
            if not matched:
                continue
            if errs:
                out += error(errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")
                continue
            for expr, prog, message, msg_prog, reason in policy.validations:
                try:
                    v = prog.run(act) if prog is not None else None
                except cel.EvalError as e:
                    out += error(f"expression '{expr}' resulted in error: {e}")
                    continue
                if not cel.is_bool(v):
                    out += error(f"expression '{expr}' resulted in error: no such overload")
                    continue
                if v:
                    continue
                out.append(_Decision("Deny", _message(expr, message, msg_prog, act), reason))
        return out

    async def _params(self, kind: Obj, ref: Any, a: aw._Attributes) -> list[Any] | None:
        """The param objects a binding's paramRef names; None when there are none
        and its parameterNotFoundAction is Deny ([]: Allow)."""
        if not isinstance(ref, dict):
            raise errors.bad_request("paramRef is required when paramKind is set")
        api_version, k = str(kind.get("apiVersion") or ""), str(kind.get("kind") or "")
        group, _, version = api_version.rpartition("/")
        info = next((i for i in self.server.registry.all()
                     if i.group == group and i.version == version and i.kind == k), None)
        if info is None:
            raise errors.bad_request(f"paramKind {api_version}, Kind={k} is not served")
        ns = ref.get("namespace") or (a.namespace if info.namespaced else None)
        if info.namespaced and not ns:
            raise errors.bad_request("cannot use namespaced paramRef in policy binding that matches "
                                     "cluster-scoped resources")
        store = self.server.store(info.group, info.version, info.plural)
        found: list[Any] = []
        if ref.get("name"):
            try:
                found = [await store.get(ns if info.namespaced else None, str(ref["name"]), resource_version="0")]
            except errors.StatusError as e:
                if e.code != 404:
                    raise
        else:
            lst = await store.list(ns if info.namespaced else None,
                                   pred=_label_predicate(ref.get("selector") or {}))
            found = lst["items"]
        if not found:
            return None if ref.get("parameterNotFoundAction") != "Allow" else []
        return found

    async def _namespace(self, a: aw._Attributes) -> Obj | None:
        if not a.namespace or not a.info.namespaced:
            return None
        store = self.server.store("", "v1", "namespaces")
        try:
            return await store.get(None, a.namespace, resource_version="0")
        except errors.StatusError:
            return None


def _label_predicate(sel: Obj) -> Predicate:
    return Predicate(selectors.to_string(sel) or None)


def _request(a: aw._Attributes) -> Obj:
    out = a.request("")
    for k in ("uid", "object", "oldObject"):
        out.pop(k, None)
    return out


def _variables(policy: Policy, act: dict[str, Any]) -> Any:
    """`variables`: each one's value in order (later ones see earlier ones); one
    that fails is an error only where a validation uses it."""
    import celpy
    from celpy import celtypes

    from kybern.api import cel

    out = celtypes.MapType()
    act["variables"] = out
    for name, _expr, prog in policy.variables:
        try:
            out[celtypes.StringType(name)] = prog.run(act) if prog is not None and prog is not UNSUPPORTED else \
                celpy.CELEvalError("compilation failed" if prog is None else "not supported by kybern's CEL")
        except cel.EvalError as e:
            out[celtypes.StringType(name)] = celpy.CELEvalError(str(e))
    return out


def _message(expr: str, message: str, msg_prog: Any, act: dict[str, Any]) -> str:
    from kybern.api import cel

    if msg_prog is not None:
        try:
            m = msg_prog.run(act)
        except cel.EvalError:
            m = None
        if isinstance(m, str) and str(m).strip() and "\n" not in str(m):
            return str(m).strip()
    if message:
        return message.strip()
    return f"failed expression: {expr.strip()}"


def _denied(a: aw._Attributes, message: str, reason: str | None) -> errors.StatusError:
    """admission.NewForbidden with the validation's reason and code, as upstream."""
    info = a.request_info
    resource = f"{info.plural}.{info.group}" if info.group else info.plural
    reason = reason or "Invalid"
    text = f'{resource} "{a.name}" is forbidden: {message}' if a.name else f"{resource} is forbidden: {message}"
    details: Obj = {"group": info.group, "kind": info.plural}
    if a.name:
        details = {"name": a.name, **details}
    details["causes"] = [{"message": message}]
    return errors.StatusError(REASON_CODES.get(reason, 422), reason, text, details=details)
