"""Dynamic admission control: the MutatingAdmissionWebhook and
ValidatingAdmissionWebhook plugins (k8s.io/apiserver pkg/admission/plugin/webhook).

On a create, update or delete of a matching resource the apiserver POSTs an
admission.k8s.io/v1 AdmissionReview to each webhook the stored
Mutating/ValidatingWebhookConfigurations name: the mutating ones first, one after
another (configurations by name, webhooks in order; a JSONPatch answer is applied
and the object defaulted and validated again), then the validating ones, all at
once. A denial is the webhook's Status (`admission webhook "NAME" denied the
request: MESSAGE`); a webhook that cannot be called fails the request with a 500
(failurePolicy Fail) or is skipped (Ignore); warnings go back as Warning headers.

The configurations are read from the watch cache (fed by the apiserver's one
storage watch, as upstream's informer): with none stored, a write pays two dict
look-ups. Parsed hooks are kept until the stored configurations change.

Where it runs in kybern (kybern/apiserver/store.py): after the object's own
defaulting and validation, before the built-in admission that needs other
objects (ServiceAccount, Priority, LimitRanger, ResourceQuota) — so webhooks do
not see the token volume or the priority those add. A webhook's matchConditions
(CEL, kybern.api.cel) are compiled once per stored configuration and evaluated
after its rules and selectors match. Not done: patches of a CONNECT's options.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import copy
import logging
import random
import socket
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from kybern.api import admissionregistration
from kybern.apiserver.store import key_prefix, object_key
from kybern.machinery import errors, meta, patch, selectors

if TYPE_CHECKING:
    from aiohttp import web

    from kybern.api.registry import ResourceInfo
    from kybern.apiserver.server import APIServer
    from kybern.apiserver.store import RESTStore

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# the write request being served: (request, resource, subresource), set by rest.handle.
# Webhooks are called for the store operation that request asks for, not for the
# writes the apiserver makes on its behalf (a quota's status, a binding's pod)
REQUEST: contextvars.ContextVar[tuple[web.Request, ResourceInfo, str | None] | None] = \
    contextvars.ContextVar("kybern_admission_request", default=None)

ADMITTED_SUBRESOURCES = (None, "status", "ephemeralcontainers")
MUTATING_PREFIX = key_prefix(admissionregistration.MUTATING)
VALIDATING_PREFIX = key_prefix(admissionregistration.VALIDATING)
REVIEW_GVK = "admission.k8s.io/v1, Kind=AdmissionReview"
# upstream never sends these through webhooks (IsExemptAdmissionConfigurationResource)
EXEMPT_GROUP = admissionregistration.GROUP


@dataclass
class Hook:
    name: str
    config: str
    spec: Obj
    mutating: bool

    @property
    def failure_policy(self) -> str:
        return self.spec.get("failurePolicy") or "Fail"

    def conditions(self) -> list[tuple[str, Any]]:
        """(expression, kybern.api.cel.Program) per matchCondition, compiled on
        first use (None: it does not compile; the configuration's validation
        refuses those)."""
        out: list[tuple[str, Any]] | None = self.__dict__.get("_conditions")
        if out is None:
            from kybern.api import cel

            out = []
            for c in self.spec.get("matchConditions") or []:
                expr = str((c or {}).get("expression") or "")
                try:
                    out.append((expr, cel.compile(expr, admissionregistration.MATCH_CONDITION_VARS)))
                except cel.Unsupported as e:  # not evaluated: taken as true, the webhook decides
                    log.warning("matchCondition %r of webhook %s is not evaluated: %s", expr, self.name, e)
                except cel.CompileError:
                    out.append((expr, None))
            self.__dict__["_conditions"] = out
        return out

    @property
    def timeout(self) -> int:
        return int(self.spec.get("timeoutSeconds") or 10)


class CallError(Exception):
    """ErrCallingWebhook: the webhook could not be called or answered nonsense;
    failurePolicy decides whether the request fails. `code`: its Status's (503
    for a failed call, as upstream's "error calling webhook")."""

    def __init__(self, hook: str, reason: str, code: int = 503) -> None:
        super().__init__(f'failed calling webhook "{hook}": {reason}')
        self.code = code


class _Untyped:
    """A counter whose upstream name does not end in _total (prometheus_client would
    add one): exported untyped, under upstream's name."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...]) -> None:
        self.name, self.doc, self.labelnames = name, doc, labelnames
        self.values: dict[tuple[str, ...], float] = {}

    def collect(self) -> Any:
        from prometheus_client.metrics_core import Metric

        m = Metric(self.name, self.doc, "unknown")
        for key, n in list(self.values.items()):
            m.add_sample(self.name, dict(zip(self.labelnames, key)), n)
        yield m

    def describe(self) -> list[Any]:
        return []


class WebhookMetrics:
    """Upstream's admission webhook metrics (k8s.io/apiserver pkg/admission/metrics),
    in the apiserver's /metrics. `type` is "admit" (mutating) or "validating"."""

    def __init__(self, server: Any) -> None:
        from kybern.apiserver.metrics import _Counts, _Histograms

        self.duration = _Histograms(
            "apiserver_admission_webhook_admission_duration_seconds",
            "Admission webhook latency histogram in seconds, identified by name and broken out for each "
            "operation and API resource and type (validate or admit).",
            ("name", "operation", "rejected", "type"), (0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10, 25))
        self.requests = _Counts(
            "apiserver_admission_webhook_request_total",
            "Admission webhook request total, identified by name and broken out for each admission type "
            "(validating or mutating) and operation. Additional labels specify whether the request was rejected "
            "or not and an HTTP status code. Codes greater than 600 are truncated to 600, to keep the metrics "
            "cardinality bounded.", ("code", "name", "operation", "rejected", "type"))
        self.rejections = _Untyped(
            "apiserver_admission_webhook_rejection_count",
            "Admission webhook rejection count, identified by name and broken out for each admission type "
            "(validating or admit) and operation. Additional labels specify an error type "
            "(calling_webhook_error or apiserver_internal_error if an error occurred; no_error otherwise) and "
            "optionally a non-zero rejection code if the webhook rejects the request with an HTTP status code "
            "(honored by the apiserver when the code is greater or equal to 400). Codes greater than 600 are "
            "truncated to 600, to keep the metrics cardinality bounded.",
            ("error_type", "name", "operation", "rejection_code", "type"))
        self.fail_open = _Untyped(
            "apiserver_admission_webhook_fail_open_count",
            "Admission webhook fail open count, identified by name and broken out for each admission type "
            "(validating or admit).", ("name", "type"))
        prom = getattr(getattr(server, "metrics", None), "prom", None)
        if prom is not None:
            for c in (self.duration, self.requests, self.rejections, self.fail_open):
                prom.register(c)

    def observe(self, hook: Hook, operation: str, seconds: float, code: int, rejected: bool,
                error_type: str | None) -> None:
        typ = "admit" if hook.mutating else "validating"
        flag = "true" if rejected else "false"
        code = min(code, 600)
        self.duration.observe((hook.name, operation, flag, typ), seconds)
        key = (str(code), hook.name, operation, flag, typ)
        self.requests.values[key] = self.requests.values.get(key, 0) + 1
        if rejected and error_type is not None:
            rkey = (error_type, hook.name, operation, str(code), typ)
            self.rejections.values[rkey] = self.rejections.values.get(rkey, 0) + 1

    def failed_open(self, hook: Hook) -> None:
        key = (hook.name, "admit" if hook.mutating else "validating")
        self.fail_open.values[key] = self.fail_open.values.get(key, 0) + 1


class Webhooks:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self._parsed: dict[str, tuple[tuple[tuple[str, int], ...], list[Hook]]] = {}
        self._sessions: dict[bytes, aiohttp.ClientSession] = {}
        self.metrics = WebhookMetrics(server)
        from kybern.apiserver.admission_policy import Policies

        self.policies = Policies(self)

    # -- the configurations ------------------------------------------------------
    def configured(self) -> bool:
        """Whether any configuration (or ValidatingAdmissionPolicyBinding) is
        stored: three dict look-ups."""
        res = self.server.watch_cache.resources
        m, v = res.get(MUTATING_PREFIX), res.get(VALIDATING_PREFIX)
        return bool((m is not None and m.objects) or (v is not None and v.objects)) or self.policies.configured()

    def active(self, store: RESTStore, subresource: str | None) -> bool:
        """Whether this write may need webhooks: a configuration is stored and the
        write is the one the request asks for. The pod-create path pays two dict
        look-ups when no configuration exists."""
        if not self.configured():
            return False
        ctx = REQUEST.get()
        return ctx is not None and ctx[1] is store.info and ctx[2] == subresource and \
            subresource in ADMITTED_SUBRESOURCES and store.info.group != EXEMPT_GROUP

    def hooks(self, prefix: str, mutating: bool) -> list[Hook]:
        rc = self.server.watch_cache.resources.get(prefix)
        if rc is None or not rc.objects:
            return []
        sig = tuple(sorted((k, e.rv) for k, e in rc.objects.items()))
        cached = self._parsed.get(prefix)
        if cached is not None and cached[0] == sig:
            return cached[1]
        hooks: list[Hook] = []
        for key in sorted(rc.objects):  # configurations by name, as upstream sorts them
            cfg = rc.objects[key].decode()
            for spec in cfg.get("webhooks") or []:
                hooks.append(Hook(spec.get("name") or "", cfg["metadata"]["name"], spec, mutating))
        self._parsed[prefix] = (sig, hooks)
        return hooks

    # -- admission -----------------------------------------------------------------
    async def admit(self, store: RESTStore, operation: str, obj: Obj | None, old: Obj | None, *,
                    subresource: str | None, dry_run: bool, field_validation: str, warnings: list[str],
                    options: Obj | None = None, causes: Any = None, scope: tuple[str, ...] | None = None) -> None:
        """Mutating webhooks (obj changed in place, then defaulted and validated
        again), then validating webhooks; raises the StatusError that fails the
        request."""
        ctx = REQUEST.get()
        request = ctx[0] if ctx is not None else None
        info = store.info
        attrs = _Attributes(info, operation, obj, old, subresource, dry_run, options, request)
        # reinvocationPolicy IfNeeded: a webhook called before another one changed the
        # object is called once more after the first round (upstream's reinvocation;
        # a change in that second round does not start a third)
        invoked: list[Hook] = []
        again: list[Hook] = []
        for round_ in (1, 2):
            for hook in (self.hooks(MUTATING_PREFIX, True) if round_ == 1 else again):
                sent = await self._matches(hook, attrs)
                if sent is None:
                    continue
                patched = sent.back(await self._call(hook, sent, warnings))
                if patched is not None and obj is not None and patched != obj:
                    _assign(obj, patched)
                    self._revalidate(store, operation, obj, old, subresource, field_validation, warnings, causes,
                                     scope)
                    if round_ == 1:
                        again.extend(h for h in invoked if h not in again)
                if round_ == 1 and hook.spec.get("reinvocationPolicy") == "IfNeeded":
                    invoked.append(hook)
            if not again:
                break
        if self.policies.configured():
            await self.policies.validate(attrs, warnings)
        await self._validating(attrs, warnings)

    async def _validating(self, attrs: _Attributes, warnings: list[str]) -> None:
        """The validating webhooks, called at once; the first failure (in their
        order) fails the request."""
        calls = []
        for hook in self.hooks(VALIDATING_PREFIX, False):
            sent = await self._matches(hook, attrs)
            if sent is not None:
                calls.append(self._call(hook, sent, warnings))
        if not calls:
            return
        for r in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(r, BaseException):
                raise r

    async def connect(self, request: web.Request, store: RESTStore, namespace: str | None, name: str,
                      subresource: str) -> None:
        """CONNECT of pods/exec, attach, portforward: the webhooks see the request's
        options (PodExecOptions, ...) as the object, as upstream's connect handler
        admits them. A mutating webhook's patch of them is not applied."""
        if not self.configured():
            return
        opts = _connect_options(subresource, request)
        attrs = _Attributes(store.info, "CONNECT", opts, None, subresource, False, None, request,
                            name=name, namespace=namespace or "", kind=opts["kind"])
        warnings: list[str] = []
        for hook in self.hooks(MUTATING_PREFIX, True):
            sent = await self._matches(hook, attrs)
            if sent is not None:
                await self._call(hook, sent, warnings)
        if self.policies.configured():
            await self.policies.validate(attrs, warnings)
        await self._validating(attrs, warnings)

    @staticmethod
    def _revalidate(store: RESTStore, operation: str, obj: Obj, old: Obj | None, subresource: str | None,
                    field_validation: str, warnings: list[str], causes: Any, scope: tuple[str, ...] | None
                    ) -> None:
        """A patched object is defaulted (as upstream decodes it with defaulting)
        and validated again: a webhook cannot store what the API refuses."""
        strategy = store.strategy
        assert strategy is not None
        if operation == "CREATE":
            store._prepare(lambda: strategy.prepare_for_create(obj), obj, field_validation, warnings)
            store._validate(obj, lambda: store._meta_causes(obj) + strategy.validate(obj), field_validation,
                            warnings)
        elif subresource is None:
            store._prepare(lambda: strategy.default(obj), obj, field_validation, warnings)
            store._validate(obj, causes, field_validation, warnings)
        else:
            store._validate(obj, causes, field_validation, warnings, scope=scope)

    async def _matches(self, hook: Hook, a: _Attributes) -> _Attributes | None:
        """What to send `hook` (ShouldCallHook): `a`, or, when only another served
        version of the resource matches its rules and its matchPolicy is
        Equivalent, `a` converted to that version; None: not called."""
        rules = hook.spec.get("rules") or []
        sent: _Attributes | None = a if any(_rule_matches(r, a, a.info) for r in rules) else None
        if sent is None and hook.spec.get("matchPolicy", "Equivalent") == "Equivalent":
            for other in self._other_versions(a.info):
                if any(_rule_matches(r, a, other) for r in rules):
                    sent = a.as_version(other)
                    break
        if sent is None:
            return None
        if not _object_selector_matches(hook.spec.get("objectSelector"), a):
            return None
        if not await self._namespace_matches(hook.spec.get("namespaceSelector"), a):
            return None
        if hook.spec.get("matchConditions") and not self._conditions_match(hook, sent, self.server):
            return None
        return sent

    @staticmethod
    def _conditions_match(hook: Hook, a: _Attributes, server: Any = None) -> bool:
        """The matchConditions (upstream's matchconditions.Matcher): any false one
        skips the webhook; otherwise errors fail the request with a 403 under
        failurePolicy Fail, or skip the webhook under Ignore."""
        from kybern.api import cel

        request = a.request("")
        for k in ("uid", "object", "oldObject"):
            request.pop(k, None)
        act = {"object": cel.to_cel(a.obj), "oldObject": cel.to_cel(a.old), "request": cel.to_cel(request),
               "authorizer": cel.authorizer({"group": a.info.group, "resource": a.info.plural,
                                             "subresource": a.subresource or "", "namespace": a.namespace,
                                             "name": a.name}, _cel_check(server, a))}
        matched, errs = cel.match_conditions(hook.conditions(), act, uncompiled="compilation failed")
        if not matched:
            return False
        if errs:
            if hook.failure_policy == "Ignore":
                return False
            info = a.request_info
            resource = f"{info.plural}.{info.group}" if info.group else info.plural
            err = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
            msg = f'{resource} "{a.name}" is forbidden: {err}' if a.name else f"{resource} is forbidden: {err}"
            raise errors.StatusError(403, "Forbidden", msg,
                                     details={"name": a.name, "group": info.group, "kind": info.plural}
                                     if a.name else {"group": info.group, "kind": info.plural})
        return True

    def _other_versions(self, info: ResourceInfo) -> list[ResourceInfo]:
        """The resource's other served versions it converts to (HPA, multi-version CRs)."""
        from kybern.apiserver import conversion

        if not conversion.convertible(info.strategy):
            return []
        return [o for o in self.server.registry.all()
                if o.group == info.group and o.plural == info.plural and o.version != info.version]

    async def _namespace_matches(self, sel: Obj | None, a: _Attributes) -> bool:
        """MatchNamespaceSelector: cluster-scoped objects other than namespaces
        always match; a namespace written now matches on its own labels."""
        if not sel or (not sel.get("matchLabels") and not sel.get("matchExpressions")):
            return True
        is_ns = a.info.group == "" and a.info.plural == "namespaces"
        if not a.namespace and not is_ns:
            return True
        if is_ns and a.subresource is None and a.operation in ("CREATE", "UPDATE"):
            labels = (a.obj or {}).get("metadata", {}).get("labels")
        else:
            labels = await self._namespace_labels(a.namespace or a.name)
        return selectors.selector_matches(sel, labels or {})

    async def _namespace_labels(self, ns: str) -> dict[str, str] | None:
        store = self.server.store("", "v1", "namespaces")
        entry = await store.cache.get(store.prefix, object_key(store.info, None, ns))
        if entry is not None:
            return entry.labels
        try:
            return (await store.get(None, ns)).get("metadata", {}).get("labels")
        except errors.StatusError as e:
            if e.code != 404:
                raise
            return None

    # -- calling a webhook ---------------------------------------------------------
    async def _call(self, hook: Hook, a: _Attributes, warnings: list[str]) -> Obj | None:
        """One webhook call: None, or the object a mutating webhook's patch made.
        Raises the request's StatusError (a denial, or a call failure under
        failurePolicy Fail)."""
        if a.dry_run and hook.spec.get("sideEffects") not in admissionregistration.NO_SIDE_EFFECTS:
            raise errors.bad_request(f'admission webhook "{hook.name}" does not support dry run')
        start = time.monotonic()
        try:
            response = await self._post(hook, a)
        except CallError as e:
            ignore = hook.failure_policy == "Ignore"
            self.metrics.observe(hook, a.operation, time.monotonic() - start, e.code, not ignore,
                                 "calling_webhook_error")
            if ignore:
                log.warning("Failed calling webhook, failing open %s: %s", hook.name, e)
                self.metrics.failed_open(hook)
                return None
            log.warning("Failed calling webhook, failing closed %s: %s", hook.name, e)
            raise errors.internal(str(e)) from None
        for w in response.get("warnings") or []:
            if isinstance(w, str):
                warnings.append(w)
        if not response.get("allowed"):
            denial = _denied(hook.name, response.get("status"))
            self.metrics.observe(hook, a.operation, time.monotonic() - start, denial.code, True, "no_error")
            raise denial
        self.metrics.observe(hook, a.operation, time.monotonic() - start, 200, False, None)
        raw_patch = response.get("patch")
        if not raw_patch:
            return None
        try:
            ops = orjson.loads(base64.b64decode(raw_patch))
        except (ValueError, TypeError) as e:
            e2 = CallError(hook.name, f"received undecodable patch in webhook response: {e}")
            if hook.failure_policy == "Ignore":
                return None
            raise errors.internal(str(e2)) from None
        if not ops:
            return None
        if a.obj is None:
            raise errors.internal(f'admission webhook "{hook.name}" attempted to modify the object, which is '
                                  "not supported for this operation")
        try:
            return patch.json_patch(a.obj, ops)  # type: ignore[no-any-return]
        except errors.StatusError as e:
            raise errors.internal(e.message) from None

    async def _post(self, hook: Hook, a: _Attributes) -> Obj:
        cc = hook.spec.get("clientConfig") or {}
        timeout = hook.timeout
        uid = str(uuid.uuid4())
        body = orjson.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
                             "request": a.request(uid)})
        url, dial, server_name = await self._target(cc)
        shown = f"{url}?timeout={timeout}s"
        if not dial.startswith("https://"):  # the service could not be resolved: why
            raise CallError(hook.name, f'failed to call webhook: Post "{shown}": {dial}')
        try:
            session = self._session(hook.name, cc.get("caBundle") or "")
            kwargs: dict[str, Any] = {}
            if server_name:
                kwargs["server_hostname"] = server_name
            async with session.post(f"{dial}?timeout={timeout}s", data=body,
                                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                                    timeout=aiohttp.ClientTimeout(total=timeout), **kwargs) as resp:
                raw = await resp.read()
                if resp.status < 200 or resp.status >= 300:
                    text = raw.decode(errors="replace").strip()
                    raise CallError(hook.name, f"failed to call webhook: an error on the server (\"{text}\") "
                                               "has prevented the request from succeeding", resp.status)
        except CallError:
            raise
        except TimeoutError:
            raise CallError(hook.name, f'failed to call webhook: Post "{shown}": context deadline exceeded') \
                from None
        except aiohttp.ClientConnectorCertificateError as e:
            raise CallError(hook.name, f'failed to call webhook: Post "{shown}": tls: failed to verify '
                                       f"certificate: {_cert_reason(e)}") from None
        except aiohttp.ClientConnectorError as e:
            raise CallError(hook.name, f'failed to call webhook: Post "{shown}": {_dial_reason(e)}') from None
        except (aiohttp.ClientError, OSError, ssl.SSLError) as e:
            raise CallError(hook.name, f'failed to call webhook: Post "{shown}": {e}') from None
        try:
            review = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise CallError(hook.name, f"failed to call webhook: {e}") from None
        why = _verify(review, uid, hook.mutating)
        if why:
            raise CallError(hook.name, f"received invalid webhook response: {why}")
        return review["response"]  # type: ignore[no-any-return]

    async def _target(self, cc: Obj) -> tuple[str, str, str | None]:
        """(the URL as upstream names it in errors, the URL dialled or why there is
        none, the TLS server name when it differs from the dialled host). A service
        is dialled at one of its ready endpoints (as kube-apiserver's endpoint
        resolver), verified as `NAME.NAMESPACE.svc`."""
        if cc.get("url"):
            return cc["url"], cc["url"], None
        svc = cc.get("service") or {}
        name, ns, port = svc.get("name") or "", svc.get("namespace") or "", int(svc.get("port") or 443)
        path = svc.get("path") or ""
        host = f"{name}.{ns}.svc"
        url = f"https://{host}:{port}{path}"
        addr = await self._resolve(name, ns, port)
        return url, (f"https://{addr[1]}{path}" if addr[0] else addr[1]), host

    async def _resolve(self, name: str, ns: str, port: int) -> tuple[bool, str]:
        """(True, HOST:PORT) of a ready endpoint of the service's port, or (False,
        why not) in the words of upstream's ResolveEndpoint."""
        try:
            service = await self.server.store("", "v1", "services").get(ns, name, resource_version="0")
        except errors.StatusError:
            return False, f'service "{name}" not found'
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName":
            return True, f"{spec.get('externalName')}:{port}"
        sp = next((p for p in spec.get("ports") or [] if p.get("port") == port), None)
        if sp is None:
            return False, f'no service port {port} found for service "{name}"'
        try:
            eps = await self.server.store("", "v1", "endpoints").get(ns, name, resource_version="0")
        except errors.StatusError:
            return False, f'endpoints "{name}" not found'
        for subset in eps.get("subsets") or []:
            addrs = subset.get("addresses") or []
            for ep in subset.get("ports") or []:
                if ep.get("name", "") == sp.get("name", "") and addrs:
                    ip = random.choice(addrs).get("ip") or ""
                    return True, f"[{ip}]:{ep['port']}" if ":" in ip else f"{ip}:{ep['port']}"
        return False, f'no endpoints available for service "{name}"'

    def _session(self, hook: str, ca_bundle: str) -> aiohttp.ClientSession:
        key = ca_bundle.encode()
        s = self._sessions.get(key)
        if s is None or s.closed:
            ctx = ssl.create_default_context()
            if ca_bundle:
                try:
                    ctx.load_verify_locations(cadata=base64.b64decode(ca_bundle).decode())
                except (ValueError, ssl.SSLError, UnicodeDecodeError):
                    raise CallError(hook, "could not get REST client: unable to load root certificates: unable "
                                          "to parse bytes as PEM block", 500) from None
            s = self._sessions[key] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx),
                                                                headers={"User-Agent": "kube-apiserver-admission"})  # as upstream's webhook client
        return s

    async def close(self) -> None:
        for s in self._sessions.values():
            await s.close()
        self._sessions.clear()


class _Attributes:
    """admission.Attributes: what the request is about."""

    def __init__(self, info: ResourceInfo, operation: str, obj: Obj | None, old: Obj | None,
                 subresource: str | None, dry_run: bool, options: Obj | None, request: web.Request | None, *,
                 name: str | None = None, namespace: str | None = None, kind: str | None = None) -> None:
        self.info, self.operation, self.obj, self.old = info, operation, obj, old
        self.subresource, self.dry_run, self.options, self.http = subresource, dry_run, options, request
        self.kind = kind or info.kind
        self.request_info = info  # the version the request was made in (requestKind, requestResource)
        m = (obj or old or {}).get("metadata") or {}
        self.name = name if name is not None else m.get("name") or ""
        is_ns = info.group == "" and info.plural == "namespaces"
        self.namespace = namespace if namespace is not None else \
            (m.get("namespace") or "") if info.namespaced else (self.name if is_ns else "")

    def as_version(self, info: ResourceInfo) -> _Attributes:
        """These attributes with the objects converted to `info`'s version (matchPolicy
        Equivalent); back() converts a patched object to the request's version."""
        convert = self.info.strategy.convert  # type: ignore[union-attr]
        out = copy.copy(self)
        out.info, out.kind = info, info.kind
        out.obj = convert(meta.clone_json(self.obj), info.api_version) if self.obj is not None else None
        out.old = convert(meta.clone_json(self.old), info.api_version) if self.old is not None else None
        return out

    def back(self, obj: Obj | None) -> Obj | None:
        if obj is None or self.info is self.request_info:
            return obj
        return self.request_info.strategy.convert(obj, self.request_info.api_version)  # type: ignore[union-attr, no-any-return]

    def request(self, uid: str) -> Obj:
        info, req = self.info, self.request_info
        kind = {"group": info.group, "version": info.version, "kind": self.kind}
        resource = {"group": info.group, "version": info.version, "resource": info.plural}
        out: Obj = {"uid": uid, "kind": kind, "resource": resource}
        if self.subresource:
            out["subResource"] = self.subresource
        if req is info:
            out["requestKind"], out["requestResource"] = kind, resource
        else:
            out["requestKind"] = {"group": req.group, "version": req.version, "kind": req.kind}
            out["requestResource"] = {"group": req.group, "version": req.version, "resource": req.plural}
        if self.subresource:
            out["requestSubResource"] = self.subresource
        if self.name:
            out["name"] = self.name
        if self.namespace and (info.namespaced or self.operation != "CREATE"):
            # a namespace's own requests carry its name as their namespace once it is in
            # the URL (upstream's RequestInfo), so not on create
            out["namespace"] = self.namespace
        out["operation"] = self.operation
        out["userInfo"] = self._user()
        out["object"] = self.obj
        out["oldObject"] = self.old
        out["dryRun"] = self.dry_run
        out["options"] = self._options()
        return out

    def user(self) -> Obj:
        return self._user()

    def _user(self) -> Obj:
        from kybern.apiserver import reviews

        user = self.http.get("user") if self.http is not None else None
        return user or reviews.ADMIN

    def _options(self) -> Obj | None:
        if self.operation == "CONNECT":
            return None
        kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}[self.operation]
        out: Obj = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
        if self.operation == "DELETE":
            out.update({k: v for k, v in (self.options or {}).items() if k not in ("kind", "apiVersion")})
        elif self.http is not None:
            fm = self.http.query.get("fieldManager")
            if self.http.method == "PATCH" and not fm:
                fm = None
            if fm:
                out["fieldManager"] = fm
            fv = self.http.query.get("fieldValidation")
            if fv:
                out["fieldValidation"] = fv
        if self.dry_run:
            out["dryRun"] = ["All"]
        return out


# what a patch cannot change: the store set them (or keeps them on update), and
# upstream's BeforeCreate/BeforeUpdate set them again after mutating admission
SYSTEM_META = ("name", "namespace", "uid", "creationTimestamp", "resourceVersion", "generation",
               "deletionTimestamp", "deletionGracePeriodSeconds")


def _assign(obj: Obj, patched: Obj) -> None:
    """obj becomes the patched object, in place, keeping its metadata dict (the
    store holds it) and the system fields in it."""
    meta_ = obj.get("metadata")
    new_meta = patched.get("metadata")
    obj.clear()
    obj.update(patched)
    if isinstance(meta_, dict):
        kept = {k: meta_[k] for k in SYSTEM_META if k in meta_}
        merged = {k: kept[k] if k in SYSTEM_META else v for k, v in (new_meta or {}).items()
                  if k not in SYSTEM_META or k in kept}  # the patch's key order
        merged.update({k: v for k, v in kept.items() if k not in merged})
        meta_.clear()
        meta_.update(merged)
        obj["metadata"] = meta_


def _connect_options(subresource: str, request: web.Request) -> Obj:
    """The versioned options a CONNECT carries (PodExecOptions, PodAttachOptions,
    PodPortForwardOptions), from the query as upstream decodes them."""
    q = request.query

    def flag(k: str) -> bool:
        return q.get(k, "").lower() in ("true", "1")

    if subresource == "portforward":
        ports = [int(p) for v in q.getall("ports", []) for p in v.split(",") if p.strip().isdigit()]
        return {"kind": "PodPortForwardOptions", "apiVersion": "v1", **({"ports": ports} if ports else {})}
    out: Obj = {"kind": "PodExecOptions" if subresource == "exec" else "PodAttachOptions", "apiVersion": "v1"}
    for k in ("stdin", "stdout", "stderr", "tty"):
        if flag(k):
            out[k] = True
    if q.get("container"):
        out["container"] = q["container"]
    if subresource == "exec":
        out["command"] = q.getall("command", [])
    return out


def _rule_matches(rule: Obj, a: _Attributes, info: ResourceInfo) -> bool:
    """k8s.io/apiserver pkg/admission/plugin/webhook/predicates/rules: scope,
    operation, group, version, resource (with subresource), of `a` as `info`."""
    scope = rule.get("scope") or "*"
    is_ns = info.group == "" and info.plural == "namespaces"
    if scope == "Namespaced" and (is_ns or not a.namespace):
        return False
    if scope == "Cluster" and not (is_ns or not a.namespace):
        return False
    ops = rule.get("operations") or []
    if "*" not in ops and a.operation not in ops:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and info.group not in groups:
        return False
    versions = rule.get("apiVersions") or []
    if "*" not in versions and info.version not in versions:
        return False
    sub = a.subresource or ""
    for rs in rule.get("resources") or []:
        res, _, rsub = rs.partition("/")
        if (res == "*" or res == info.plural) and (rsub == "*" or rsub == sub):
            return True
    return False


def _object_selector_matches(sel: Obj | None, a: _Attributes) -> bool:
    """Either the new or the old object's labels match (a delete has only the old)."""
    if not sel or (not sel.get("matchLabels") and not sel.get("matchExpressions")):
        return True
    for o in (a.obj, a.old):
        if o is not None and selectors.selector_matches(sel, (o.get("metadata") or {}).get("labels") or {}):
            return True
    return False


def _denied(name: str, status: Any) -> errors.StatusError:
    """webhookerrors.ToStatusErr: the webhook's Status, code at least 400."""
    st = status if isinstance(status, dict) else {}
    code = st.get("code") if isinstance(st.get("code"), int) else 0
    code = max(code, 400)
    denied = f'admission webhook "{name}" denied the request'
    if st.get("message"):
        message = f"{denied}: {st['message']}"
    elif st.get("reason"):
        message = f"{denied}: {st['reason']}"
    else:
        message = f"{denied} without explanation"
    details = st.get("details") if isinstance(st.get("details"), dict) else None
    return errors.StatusError(code, str(st.get("reason") or ""), message, details=details)


def _verify(review: Any, uid: str, mutating: bool) -> str | None:
    """VerifyAdmissionResponse for admission.k8s.io/v1."""
    if not isinstance(review, dict) or not isinstance(review.get("response"), dict):
        return "webhook response was absent"
    gvk = f"{review.get('apiVersion') or ''}, Kind={review.get('kind') or ''}"
    if gvk != REVIEW_GVK:
        return f"expected webhook response of {REVIEW_GVK}, got {gvk}"
    r = review["response"]
    if r.get("uid") != uid:
        return f'expected response.uid="{uid}", got "{r.get("uid") or ""}"'
    if r.get("patch") and not r.get("patchType"):
        return "webhook returned response.patch but not response.patchType"
    if r.get("patchType") and r["patchType"] != "JSONPatch":
        return f'webhook returned invalid response.patchType of "{r["patchType"]}"'
    if not mutating and (r.get("patch") or r.get("patchType")):
        return "validating webhooks may not return patches"
    return None


def _dial_reason(e: aiohttp.ClientConnectorError) -> str:
    """Go's net error text: `dial tcp HOST:PORT: connect: connection refused`."""
    os_err = e.os_error
    host = f"[{e.host}]:{e.port}" if ":" in (e.host or "") else f"{e.host}:{e.port}"
    if isinstance(os_err, ConnectionRefusedError) or getattr(os_err, "errno", None) == 111:
        return f"dial tcp {host}: connect: connection refused"
    if isinstance(os_err, socket.gaierror):
        return f"dial tcp: lookup {e.host}: no such host"
    why = os_err.strerror if isinstance(os_err, OSError) and os_err.strerror else str(os_err)
    return f"dial tcp {host}: connect: {why.lower()}"


def _cert_reason(e: aiohttp.ClientConnectorCertificateError) -> str:
    cert = e.certificate_error
    text = getattr(cert, "verify_message", "") or str(cert)
    if "unable to get local issuer" in text or "self-signed" in text or "self signed" in text:
        return "x509: certificate signed by unknown authority"
    if "hostname mismatch" in text or "IP address mismatch" in text:
        return f"x509: certificate is not valid for the requested host ({text})"
    return f"x509: {text}"


def _cel_check(server: Any, a: _Attributes) -> Any:
    """The CEL `authorizer`'s check(): the request's user through the server's authorizer."""
    if server is None:
        return None
    from kybern.apiserver import authz

    return authz.cel_check(server, a.user())
