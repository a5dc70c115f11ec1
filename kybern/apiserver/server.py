"""The apiserver: an aiohttp application that serves discovery, OpenAPI, health,
version and every registered kind through the generic REST handlers.

Request flow: authn (bearer token) → errors as Status → route → rest.handle →
RESTStore → storage. Admission: the built-in plugins below (ServiceAccount, Priority,
LimitRanger, ResourceQuota, PodSecurity, ...) and the admission webhooks
(admission_webhooks.py, docs/admission.md); authorization by --authorization-mode
(authz.py: Node, RBAC; docs/rbac.md) between authentication and the handlers.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import copy
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from kybern.api import apiregistration, nodeapi, scheduling
from kybern.api.catalog import builtin_registry
from kybern.api.core import qos_class, validate_resource_requirements
from kybern.api.customresource import CRStrategy
from kybern.api.registry import Registry, ResourceInfo
from kybern.apiserver import (
    admission_resources,
    admission_serviceaccount,
    admission_webhooks,
    allocators,
    authz,
    bootstraptokens,
    componentstatus,
    csr,
    discovery,
    master_endpoints,
    metricsapi,
    noderestriction,
    podsecurity,
    proxy,
    rbac_policy,
    rest,
    reviews,
    satokens,
    streams,
    subresources,
)
from kybern.apiserver.metrics import APIMetrics, InstrumentedStore
from kybern.apiserver import audit
from kybern.apiserver.flowcontrol_config import FlowControlConfig
from kybern.apiserver.store import Predicate, RESTStore, key_prefix, object_key
from kybern.apiserver.watchcache import WatchCache
from kybern.machinery import errors, managedfields, meta
from kybern.storage.interface import Store

log = logging.getLogger(__name__)

SubHandler = Callable[[Any, web.Request, RESTStore, str | None, str], Awaitable[web.StreamResponse]]

PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
# the patch content types a resource's PATCH accepts, in upstream's order
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")
CR_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _validator() -> Callable[..., Any]:
    """Schema validation against the upstream definitions: decode-type errors
    are 400 (as the Go decoder would fail), unknown fields follow
    fieldValidation (Strict: 400, Warn: dropped with a Warning header, Ignore:
    dropped), and the remaining causes are returned for a 422."""
    from kybern.api import validation

    def validate(obj: dict[str, Any], info: ResourceInfo, field_validation: str,
                 warnings: list[str]) -> list[dict[str, str]]:
        # `required` in the upstream schemas describes what Go serialises, not what the
        # Go decoder demands; the per-kind strategies enforce what upstream validation does
        result = validation.check(obj, info.definition, check_required=False)
        err = validation.decode_error(info.kind, info.api_version, result)
        if err is not None:
            raise err
        if result.unknown:
            if field_validation == "Strict":
                raise validation.strict_error(info.kind, info.api_version, result.unknown)
            if field_validation == "Warn":
                warnings.extend(validation.unknown_field_messages(result.unknown))
            validation.prune(obj, info.definition)
        return list(result.causes)

    return validate



def _protect(obj: dict[str, Any], finalizer: str) -> None:
    """The StorageObjectInUseProtection admission plugin: claims and volumes are created
    with a finalizer the storage-protection controller removes once nothing uses them."""
    finalizers = obj["metadata"].setdefault("finalizers", [])
    if finalizer not in finalizers:
        finalizers.append(finalizer)


def _bearer(auth: str) -> str:
    """The token of an Authorization header as upstream's bearer token authenticator
    reads it: the scheme in any case (the Python client's in-cluster config sends
    `bearer`), the token the next space-separated part."""
    parts = auth.strip().split(" ", 2)
    return parts[1] if len(parts) >= 2 and parts[0].lower() == "bearer" else ""

class APIServer:
    def __init__(self, storage: Store, *, tokens: set[str] | None = None, node_token: str | None = None,
                 registry: Registry | None = None, advertise: str = "127.0.0.1:6443",
                 authorization_modes: str = authz.DEFAULT_MODES, anonymous_auth: bool = True) -> None:
        self.registry = registry or builtin_registry()
        self.watch_cache: WatchCache
        self.metrics = APIMetrics(self.registry, lambda: self.watch_cache.counts())
        self.storage = InstrumentedStore(storage, self.metrics.storage_latency)
        self.watch_cache = WatchCache(self.storage)  # one storage watch feeds every watcher
        for info in [*reviews.RESOURCES, *metricsapi.RESOURCES, componentstatus.RESOURCE]:
            self.registry.add(info)
        # the in-process components' health, for their ComponentStatus (set by whoever runs them)
        self.components: dict[str, componentstatus.Health] = {}
        self.shutting_down = False  # /readyz's "shutdown" check fails from then on
        self.metrics_api = metricsapi.MetricsAPI(self)  # metrics.k8s.io, answered from the node agents
        self.tokens = tokens or set()
        self.node_token = node_token
        # kube-apiserver's --anonymous-auth: a request with no credentials is system:anonymous
        self.anonymous_auth = anonymous_auth
        # authorization applies to authenticated requests (a server without tokens has no authn)
        self.authorizer = authz.Authorizer(self, authz.parse_modes(authorization_modes))
        self._aggregator: rbac_policy.Aggregator | None = None
        self._apf: FlowControlConfig | None = None
        self.auditor: audit.Auditor | None = None  # --audit-policy-file / --audit-log-path (audit.py)
        self.sa_tokens = satokens.TokenIssuer(satokens.key_from_tokens(self.tokens))
        self.advertise = advertise
        # TLS verifies client certificates against the cluster CA (ssl_context(client_ca=...)):
        # set by whoever serves the app so, and then their subject is a user (csr.peer_user)
        self.client_ca = False
        self._stores: dict[tuple[str, str, str], RESTStore] = {}
        self._validator = _validator()
        self.subresources: dict[tuple[str, str, str], SubHandler] = {
            ("*", "*", "status"): subresources.status,
            ("*", "*", "scale"): subresources.scale,
            ("", "pods", "binding"): subresources.binding,
            ("", "pods", "log"): subresources.log,
            ("", "pods", "exec"): streams.exec_,
            ("", "pods", "attach"): streams.attach,
            ("", "pods", "portforward"): streams.portforward,
            ("", "pods", "eviction"): subresources.eviction,
            ("", "namespaces", "finalize"): subresources.finalize,
            ("", "pods", "ephemeralcontainers"): subresources.ephemeralcontainers,
            ("", "serviceaccounts", "token"): satokens.token,
            ("", "nodes", "proxy"): proxy.node,
            ("", "pods", "proxy"): proxy.pod,
            ("", "services", "proxy"): proxy.service,
            ("certificates.k8s.io", "certificatesigningrequests", "approval"): csr.approval_subresource,
        }
        self.watchers: dict[str, int] = {}
        # admission that needs other objects: runs after validation, before the write
        self._before_create: dict[tuple[str, str], Callable[[dict[str, Any]], Awaitable[None]]] = {
            ("", "services"): self._allocate_service,
            ("", "persistentvolumeclaims"): self._default_storage_class,
            ("networking.k8s.io", "ingresses"): self._default_ingress_class,
            ("", "pods"): self._admit_pod,  # then NodeRestriction (below), as upstream's plugin order
            ("", "nodes"): noderestriction.node_create,
            ("coordination.k8s.io", "leases"): noderestriction.lease_create,
            ("", "persistentvolumes"): self._protect_volume,
            ("scheduling.k8s.io", "priorityclasses"): self._admit_priority_class,
            ("", "secrets"): lambda secret: satokens.fill_token_secret(self, secret),
            ("certificates.k8s.io", "certificatesigningrequests"): lambda obj: csr.admit_create(self, obj),
            **{(authz.GROUP, plural): (lambda obj, p=plural: authz.check_escalation(self, p, obj, None))
               for plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")},
        }
        self._before_update: dict[tuple[str, str], Callable[[dict[str, Any], dict[str, Any]], Awaitable[None]]] = {
            ("", "services"): self._allocate_service_update,
            ("", "nodes"): noderestriction.node_update,
            ("scheduling.k8s.io", "priorityclasses"): lambda new, old: self._admit_priority_class(new),
            **{(authz.GROUP, plural): (lambda new, old, p=plural: authz.check_escalation(self, p, new, old))
               for plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")},
        }
        self._node_session: aiohttp.ClientSession | None = None
        self._node_tls: ssl.SSLContext | None = None
        self.kubelet_client: tuple[str, str] | None = None  # (cert, key) shown to node agents
        self.pod_security = podsecurity.PodSecurity(self).install(self._before_create, self._before_update)
        self.webhooks = admission_webhooks.Webhooks(self)  # dynamic admission control

    # -- stores ---------------------------------------------------------------
    def store_for(self, info: ResourceInfo) -> RESTStore:
        key = (info.group, info.version, info.plural)
        s = self._stores.get(key)
        if s is None or s.info is not info:  # CRDs replace their ResourceInfo when they change
            from kybern.apiserver import conversion

            # multi-version kinds (HPA, CRs) see storage through their own version; CRs bring
            # their own schema validator (422 causes, pruning, as apiextensions-apiserver)
            storage = conversion.ConvertingStorage(self.storage, info.strategy, info.api_version) \
                if conversion.convertible(info.strategy) else self.storage
            own = getattr(info.strategy, "validator", None)
            s = RESTStore(info, storage, validator=own or self._validator,
                          namespace_check=self._check_namespace if info.namespaced else None,
                          before_create=self._create_admission(info),
                          before_update=self._before_update.get((info.group, info.plural)), cache=self.watch_cache,
                          track_fields=managedfields.tracker(info),
                          # built-in kinds' status updates validate status and metadata (as
                          # upstream's status strategies); CRs' validators see the whole object
                          status_scope=None if own else ("apiVersion", "kind", "metadata", "status"))
            s.webhooks = self.webhooks
            if (info.group, info.plural) == ("certificates.k8s.io", "certificatesigningrequests"):
                csr.install(self, s)
            self._stores[key] = s
        return s

    def _create_admission(self, info: ResourceInfo) -> Callable[[dict[str, Any]], Awaitable[None]] | None:
        """The kind's own admission (allocation, defaults from other objects), then, for
        namespaced kinds, the ResourceQuota check of what the object adds."""
        own = self._before_create.get((info.group, info.plural))
        if not info.namespaced:
            return own

        async def admit(obj: dict[str, Any]) -> None:
            if own is not None:
                await own(obj)
            await admission_resources.resource_quota(self, info.group, info.plural, obj)
        return admit

    def store(self, group: str, version: str, plural: str) -> RESTStore:
        info = self.registry.get(group, version, plural)
        assert info is not None, (group, version, plural)
        return self.store_for(info)

    async def _check_namespace(self, ns: str) -> None:
        store = self.store("", "v1", "namespaces")
        entry = await store.cache.get(store.prefix, object_key(store.info, None, ns))
        if entry is not None and b'"deletionTimestamp"' not in entry.raw:
            return  # cached and not terminating: every create asks, so no decode
        try:  # the watch cache first, then a live read when missing (upstream's NamespaceLifecycle)
            obj = await store.get(None, ns, resource_version="0")
        except errors.StatusError as e:
            if e.code != 404:
                raise
            obj = await store.get(None, ns)
        if obj["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(f"unable to create new content in namespace {ns} because it is being "
                                   f"terminated")

    async def _default_class(self, obj: dict[str, Any], *, field: str, group: str, plural: str,
                             annotation: str) -> None:
        """The DefaultStorageClass / DefaultIngressClass admission plugins: an object
        naming no class gets the one annotated as default (the newest if several)."""
        spec = obj.setdefault("spec", {})
        if field in spec or (obj["metadata"].get("annotations") or {}).get("kubernetes.io/ingress.class"):
            return
        info = self.registry.get(group, "v1", plural)
        if info is None:
            return
        classes = (await self.store_for(info).list(None, pred=Predicate()))["items"]
        defaults = [c for c in classes if (c["metadata"].get("annotations") or {}).get(annotation) == "true"]
        if defaults:
            newest = max(defaults, key=lambda c: c["metadata"].get("creationTimestamp") or "")
            spec[field] = newest["metadata"]["name"]

    async def _default_storage_class(self, pvc: dict[str, Any]) -> None:
        _protect(pvc, "kubernetes.io/pvc-protection")
        await admission_resources.limit_ranger_claim(self, pvc)
        await self._default_class(pvc, field="storageClassName", group="storage.k8s.io",
                                  plural="storageclasses", annotation="storageclass.kubernetes.io/is-default-class")

    async def _default_ingress_class(self, ing: dict[str, Any]) -> None:
        await self._default_class(ing, field="ingressClassName", group="networking.k8s.io",
                                  plural="ingressclasses", annotation="ingressclass.kubernetes.io/is-default-class")

    async def _default_priority_classes(self) -> list[dict[str, Any]]:
        """The PriorityClasses marked globalDefault, from the watch cache (as the
        plugin's lister): every pod create asks, so only those are decoded."""
        info = self.registry.get("scheduling.k8s.io", "v1", "priorityclasses")
        if info is None:
            return []
        store = self.store_for(info)
        cached = store.cache.resources.get(store.prefix)
        if cached is not None and store.cache.is_ready():
            entries = list(cached.objects.values())  # cluster-scoped and few: no snapshot needed
        else:
            entries, _ = await store.cache.list(store.prefix, key_prefix(info, None), Predicate())
        return [o for o in (e.decode() for e in entries if b'"globalDefault"' in e.raw) if o.get("globalDefault")]

    async def _protect_volume(self, pv: dict[str, Any]) -> None:
        _protect(pv, "kubernetes.io/pv-protection")

    async def _admit_pod(self, pod: dict[str, Any]) -> None:
        await self._admit_pod_service_account(pod)
        await noderestriction.pod_create(self, pod)
        if await admission_resources.limit_ranger(self, pod):
            # upstream's mutating admission runs before validation and PrepareForCreate: a
            # defaulted limit below the request written is refused, and the QoS class follows
            causes = [c for kind in ("initContainers", "containers")
                      for i, ctr in enumerate((pod.get("spec") or {}).get(kind) or [])
                      for c in validate_resource_requirements(ctr.get("resources"), f"spec.{kind}[{i}].resources")]
            if causes:
                raise errors.invalid("", "Pod", pod["metadata"].get("name", ""), causes)
            pod.setdefault("status", {})["qosClass"] = qos_class(pod.get("spec") or {})
        await self._admit_pod_priority(pod)
        await self._admit_pod_runtime_class(pod)

    async def _admit_pod_runtime_class(self, pod: dict[str, Any]) -> None:
        """The RuntimeClass admission plugin on pod create (kybern/api/nodeapi.py)."""
        rc_name = (pod.get("spec") or {}).get("runtimeClassName")
        rc = None
        name = pod["metadata"].get("name", "")
        if rc_name:
            store = self.store_for(self.registry.get("node.k8s.io", "v1", "runtimeclasses"))  # type: ignore[arg-type]
            why: str | None = None
            for rv in ("0", None):  # the cache first; a miss is looked up live, as upstream
                try:
                    rc = await store.get(None, rc_name, resource_version=rv)
                    break
                except errors.StatusError as e:
                    if e.code != 404:
                        raise
                    why = f'pod rejected: RuntimeClass "{rc_name}" not found'
            if rc is not None:
                why = nodeapi.admit_pod(pod, rc)
        else:
            why = nodeapi.admit_pod(pod, None)
        if why:
            raise errors.StatusError(403, "Forbidden", f'pods "{name}" is forbidden: {why}',
                                     details={"name": name, "kind": "pods"})

    async def _admit_pod_service_account(self, pod: dict[str, Any]) -> None:
        """The ServiceAccount admission plugin: a pod may only name a service
        account that exists (upstream checks `default` too; here the serviceaccount
        controller's `default` is not waited for, so a pod created the instant its
        namespace is does not fail), and it gets the token volume
        (admission_serviceaccount.py)."""
        m = pod["metadata"]
        if meta.MIRROR_POD_ANNOTATION in (m.get("annotations") or {}):
            why = admission_serviceaccount.mirror_pod_refusal(pod)  # a static pod's: left as the kubelet made it
            if why:
                name = m.get("name", "")
                raise errors.StatusError(403, "Forbidden", f'pods "{name}" is forbidden: {why}',
                                         details={"name": name, "kind": "pods"})
            return
        sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        ns = m.get("namespace") or "default"
        store = self.store("", "v1", "serviceaccounts")
        entry = await store.cache.get(store.prefix, object_key(store.info, ns, sa))
        if entry is not None:
            account = entry.decode() if b'"automountServiceAccountToken"' in entry.raw \
                or b'"imagePullSecrets"' in entry.raw else None
        elif sa == "default":
            account = None
        else:
            try:
                account = await store.get(ns, sa)
            except errors.StatusError as e:
                if e.code != 404:
                    raise
                name = m.get("name", "")
                raise errors.StatusError(
                    403, "Forbidden", f'pods "{name}" is forbidden: error looking up service account {ns}/{sa}: '
                    f'serviceaccount "{sa}" not found', details={"name": name, "kind": "pods"}) from None
        admission_serviceaccount.mount_token(pod, account)
        spec = pod.setdefault("spec", {})
        if not spec.get("imagePullSecrets") and account is not None and account.get("imagePullSecrets"):
            # the service account's image pull secrets, by name, as upstream's plugin copies them
            spec["imagePullSecrets"] = [{"name": r.get("name", "")} for r in account["imagePullSecrets"]
                                        if isinstance(r, dict)]

    async def _admit_pod_priority(self, pod: dict[str, Any]) -> None:
        """The Priority admission plugin on pod create: spec.priority and
        preemptionPolicy come from the pod's PriorityClass (or the global default
        class, whose name the pod then gets); a client may not give another value."""
        spec = pod.setdefault("spec", {})
        name = pod["metadata"].get("name", "")

        def refuse(why: str) -> errors.StatusError:
            return errors.StatusError(403, "Forbidden", f'pods "{name}" is forbidden: {why}',
                                      details={"name": name, "kind": "pods"})

        pc_name = spec.get("priorityClassName") or ""
        if pc_name:
            info = self.registry.get("scheduling.k8s.io", "v1", "priorityclasses")
            try:
                pc = await self.store_for(info).get(None, pc_name, resource_version="0")  # type: ignore[arg-type]
            except errors.StatusError as e:
                if e.code != 404:
                    raise
                raise refuse(f"no PriorityClass with name {pc_name} was found") from None
            priority, policy = int(pc.get("value") or 0), pc.get("preemptionPolicy")
        else:
            dpc = scheduling.default_class(await self._default_priority_classes())
            if dpc is not None:
                spec["priorityClassName"] = dpc["metadata"]["name"]
                priority, policy = int(dpc.get("value") or 0), dpc.get("preemptionPolicy")
            else:
                priority, policy = 0, "PreemptLowerPriority"
        if spec.get("priority") is not None and spec["priority"] != priority:
            raise refuse(f"the integer value of priority ({spec['priority']}) must not be provided in pod spec; "
                         f"priority admission controller computed {priority} from the given PriorityClass name")
        spec["priority"] = priority
        if policy:
            if spec.get("preemptionPolicy") is not None and spec["preemptionPolicy"] != policy:
                raise refuse(f"the string value of PreemptionPolicy ({spec['preemptionPolicy']}) must not be "
                             f"provided in pod spec; priority admission controller computed {policy} from the "
                             "given PriorityClass name")
            spec["preemptionPolicy"] = policy

    async def _admit_priority_class(self, pc: dict[str, Any]) -> None:
        """The Priority plugin on PriorityClass create: one global default at most."""
        if not pc.get("globalDefault"):
            return
        dpc = scheduling.default_class(await self._default_priority_classes())
        if dpc is not None and dpc["metadata"]["name"] != pc["metadata"]["name"]:  # on update: another one
            name = pc["metadata"]["name"]
            raise errors.StatusError(
                403, "Forbidden", f'priorityclasses.scheduling.k8s.io "{name}" is forbidden: PriorityClass '
                f'{dpc["metadata"]["name"]} is already marked as default. Only one default can exist',
                details={"name": name, "group": "scheduling.k8s.io", "kind": "priorityclasses"})

    async def _allocate_service_update(self, svc: dict[str, Any], old: dict[str, Any]) -> None:
        if (svc.get("spec") or {}).get("type") not in ("NodePort", "LoadBalancer"):
            return
        store = self.store("", "v1", "services")
        m = svc["metadata"]
        existing = (await store.list(None, pred=Predicate()))["items"]
        others = [o for o in existing if (o["metadata"].get("namespace"), o["metadata"]["name"]) !=
                  (m.get("namespace"), m["name"])]
        allocators.allocate_on_update(svc, old, others)

    async def _allocate_service(self, svc: dict[str, Any]) -> None:
        store = self.store("", "v1", "services")
        m = svc["metadata"]
        try:  # a taken name is AlreadyExists, not an address conflict
            await store.get(m.get("namespace"), m["name"])
            raise errors.already_exists("", "services", m["name"])
        except errors.StatusError as e:
            if e.code != 404:
                raise
        existing = await store.list(None, pred=Predicate())
        allocators.allocate(svc, existing["items"])

    async def ensure_system_namespaces(self) -> None:
        ns_store = self.store("", "v1", "namespaces")
        for ns in BOOTSTRAP_NAMESPACES:
            try:
                await ns_store.create(None, {"metadata": {"name": ns}})
            except errors.StatusError as e:
                if e.reason != "AlreadyExists":
                    raise

    async def keep_system_namespaces(self, interval: float = 60.0) -> None:
        """As upstream's systemnamespaces controller: every minute, the system namespaces
        that were deleted (kube-node-lease, where the nodes' Leases live) come back."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.ensure_system_namespaces()
            except Exception as e:  # noqa: BLE001 - storage or API trouble: the next pass retries
                log.warning("system namespaces: %s (will retry in %.0fs)", e, interval)

    async def bootstrap(self) -> None:
        await self.ensure_system_namespaces()
        try:  # the `kubernetes` Service (master_endpoints keeps it)
            await self.store("", "v1", "services").create("default", master_endpoints.service())
        except errors.StatusError as e:
            if e.reason != "AlreadyExists":
                raise
        sa_store = self.store("", "v1", "serviceaccounts")
        for ns in BOOTSTRAP_NAMESPACES:
            try:
                await sa_store.create(ns, {"metadata": {"name": "default", "namespace": ns}})
            except errors.StatusError as e:
                if e.reason != "AlreadyExists":
                    raise
        try:  # legacytokentracking's ConfigMap: since when legacy token use is tracked (satokens.py)
            await self.store("", "v1", "configmaps").create("kube-system", {"metadata": {
                "name": satokens.TRACKING_CONFIGMAP, "namespace": "kube-system"},
                "data": {"since": time.strftime("%Y-%m-%d", time.gmtime())}})
        except errors.StatusError as e:
            if e.reason != "AlreadyExists":
                raise
        as_store = self.store("apiregistration.k8s.io", "v1", "apiservices")
        for group, versions in self.registry.group_versions().items():
            for version in versions:
                try:
                    await as_store.create(None, apiregistration.local_apiservice(group, version))
                except errors.StatusError as e:
                    if e.reason != "AlreadyExists":
                        raise
        pc_store = self.store("scheduling.k8s.io", "v1", "priorityclasses")
        for pc in scheduling.SYSTEM_CLASSES:
            try:
                await pc_store.create(None, copy.deepcopy(pc))
            except errors.StatusError as e:
                if e.reason != "AlreadyExists":
                    raise
        await rbac_policy.reconcile(self)  # the bootstrap roles and bindings (rbac/bootstrap-roles)
        self._aggregator = rbac_policy.Aggregator(self)
        await self._aggregator.start()
        self._apf = FlowControlConfig(self)  # the APF objects and their Dangling conditions
        await self._apf.start()
        await self.serve_crds()

    async def serve_crds(self) -> None:
        """Serve the CRDs in storage before the first request (so they survive
        restarts) and follow changes; every apiserver process does this."""
        from kybern.apiserver.crds import CRDServer

        self.crds = CRDServer(self)
        await self.crds.start()

    # -- patch ----------------------------------------------------------------
    def apply_patch(self, ctype: str, raw: bytes, current: dict[str, Any], definition: str, *,
                    owned: bool = False, body: Any = None) -> Any:
        """The patch in `raw` applied to `current`: a new object, or `current`
        changed in place when `owned` (the caller's own copy, used for nothing
        else; then `body`, if given, is `raw` decoded and consumed too)."""
        from kybern.machinery import patch as patching

        if body is None or not owned:
            body = rest.decode_body(raw, ctype)  # decoded here: the patch functions may consume it
        if ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise errors.bad_request("json patch must be a list of operations")
            return patching.json_patch(current, body, owned=owned)
        if not isinstance(body, dict):
            raise errors.bad_request("patch body must be a JSON object")
        if ctype == "application/merge-patch+json":
            return patching.merge_patch(current, body, owned=owned)
        if ctype in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
            from kybern.api import schemas

            return patching.strategic_merge_patch(current, body, schemas.lookup(definition), owned=owned)
        raise errors.unsupported_media_type(PATCH_TYPES)

    async def patch(self, request: web.Request, store: RESTStore, ns: str | None, name: str,
                    sub: str | None) -> web.Response:
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        # custom resources have no Go struct to carry patch strategies: upstream's CRD handler
        # offers no strategic merge patch (kubectl patch without --type=merge gets a 415)
        accepted = CR_PATCH_TYPES if isinstance(store.strategy, CRStrategy) else PATCH_TYPES
        if ctype not in accepted:
            raise errors.unsupported_media_type(accepted)
        raw = await rest.read_raw(request)
        decoded = [rest.decode_body(raw, ctype)]  # malformed bodies are refused before reading the object
        apply = ctype == "application/apply-patch+yaml"
        force = self._patch_options(request, apply)
        if apply:
            make = self._applier(request, store, raw, ctype, name, sub, force)
            warnings: list[str] = []
            obj, created, wire = await store.update_wire(ns, name, make, subresource=sub,
                                                         dry_run=rest.dry_run(request),
                                                         field_validation=rest.field_validation(request),
                                                         warnings=warnings, force_allow_create=True)
            return rest.object_response(obj, wire, 201 if created else 200, warnings=warnings)

        strategic = ctype == "application/strategic-merge-patch+json" and bool(store.info.definition)

        def make(cur: dict[str, Any] | None) -> dict[str, Any]:
            if cur is None:
                raise errors.not_found(store.info.group, store.info.plural, name)
            cur_rv = cur["metadata"]["resourceVersion"]
            if strategic and decoded and isinstance(decoded[0], dict):
                from kybern.api import validation

                err = validation.patch_convert_error(decoded[0], store.info.definition)
                if err is not None:
                    raise err
            # `cur` is make()'s own copy (RESTStore.update): patched in place, with the
            # body decoded above on the first try (the patch consumes it), decoded again on a retry
            out = self.apply_patch(ctype, raw, cur, store.info.definition, owned=True,
                                   body=decoded.pop() if decoded else None)
            if not isinstance(out, dict):
                raise errors.bad_request("the patch produced an object that is not a JSON object")
            m = out.setdefault("metadata", {})
            if m.get("resourceVersion") == cur_rv:
                m.pop("resourceVersion")  # not a precondition: let the update loop retry
            return out

        warnings = []
        obj, created, wire = await store.update_wire(ns, name, make, subresource=sub,
                                                     dry_run=rest.dry_run(request),
                                                     field_validation=rest.field_validation(request),
                                                     warnings=warnings)
        return rest.object_response(obj, wire, 201 if created else 200, warnings=warnings)

    @staticmethod
    def _patch_options(request: web.Request, apply: bool) -> bool:
        """ValidatePatchOptions: fieldManager is required for apply, force only
        allowed there. Returns force."""
        q = request.query
        if apply and not q.get("fieldManager"):
            raise managedfields.invalid_options("PatchOptions", "fieldManager",
                                                "Required value: is required for apply patch",
                                                "FieldValueRequired")
        if "force" not in q:
            return False
        if not apply:
            raise managedfields.invalid_options("PatchOptions", "force",
                                                "Forbidden: may not be specified for non-apply patch",
                                                "FieldValueForbidden")
        if q["force"] not in ("true", "false", "1", "0", "True", "False"):
            raise errors.bad_request(f'force: invalid boolean value "{q["force"]}"')
        return q["force"] in ("true", "1", "True")

    def _applier(self, request: web.Request, store: RESTStore, raw: bytes, ctype: str, name: str,
                 sub: str | None, force: bool) -> Callable[[dict[str, Any] | None], dict[str, Any]]:
        """The update function of a server-side apply (kybern/machinery/apply.py):
        merges the config into the live object and leaves the new managedFields
        in the request context for the store to write."""
        from kybern.api import schemas, validation
        from kybern.machinery import apply as applying

        config = rest.decode_body(raw, ctype)
        if not isinstance(config, dict):
            raise errors.bad_request("the object provided is unrecognized (must be of type "
                                     f"{store.info.kind})")
        info = store.info
        schema = schemas.definition(info.definition) if info.definition else None
        if info.definition:
            # quantities as they are stored (cpu: "0.75" -> "750m"): upstream decodes the
            # config into the Go type first, so a value equal to the live one is no conflict
            validation.check(config, info.definition, check_required=False)
        req = managedfields.REQUEST.get()
        manager = request.query["fieldManager"]
        if req is None:
            req = managedfields.WriteRequest(manager, sub or "")
            managedfields.REQUEST.set(req)

        def make(cur: dict[str, Any] | None) -> dict[str, Any]:
            try:
                merged, managers = applying.apply(
                    cur, config, managedfields.decode(cur), manager=manager, force=force,
                    api_version=info.api_version, schema=schema,
                    has_status=bool(getattr(info.strategy, "has_status", False)), subresource=sub or "")
            except RecursionError:
                raise errors.bad_request("failed to create typed patch object: the object is nested too "
                                         "deeply") from None
            req.applied = managers
            m = merged.setdefault("metadata", {})
            if cur is not None and "resourceVersion" not in (config.get("metadata") or {}):
                m.pop("resourceVersion", None)  # not a precondition: let the update loop retry
            return merged
        return make

    # -- node proxying ----------------------------------------------------------
    def node_session(self) -> aiohttp.ClientSession:
        if self._node_session is None or self._node_session.closed:
            self._node_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.node_tls()))
        return self._node_session

    def node_tls(self) -> ssl.SSLContext:
        """How the apiserver dials a node's API (HTTPS, as a kubelet's): the node's self-signed
        certificate is not verified, upstream's default without --kubelet-certificate-authority."""
        if self._node_tls is None:
            self._node_tls = ssl.create_default_context()
            self._node_tls.check_hostname = False
            self._node_tls.verify_mode = ssl.CERT_NONE
            if self.kubelet_client is not None:  # who we are to the node (upstream's --kubelet-client-certificate)
                self._node_tls.load_cert_chain(*self.kubelet_client)
        return self._node_tls

    def node_headers(self) -> dict[str, str]:
        """With a client certificate for the nodes, no token: the node authenticates the
        certificate and asks a SubjectAccessReview, as a kubelet."""
        if self.kubelet_client is not None or not self.node_token:
            return {}
        return {"Authorization": f"Bearer {self.node_token}"}

    async def node_url(self, node_name: str) -> str:
        node = await self.store("", "v1", "nodes").get(None, node_name)
        st = node.get("status") or {}
        port = ((st.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        addr = next((a["address"] for a in st.get("addresses") or [] if a.get("type") == "InternalIP"), None)
        if not port or not addr:
            raise errors.StatusError(500, "InternalError", f"node {node_name} has no kubelet endpoint")
        host = f"[{addr}]" if ":" in addr else addr
        return f"https://{host}:{port}"

    def metrics_watchers(self, info: ResourceInfo, delta: int) -> None:
        self.watchers[info.qualified] = self.watchers.get(info.qualified, 0) + delta
        self.metrics.watcher_delta(info, delta)

    def metrics_watch_events(self, info: ResourceInfo, n: int) -> None:
        self.metrics.watch_events_sent(info, n)

    # -- HTTP ---------------------------------------------------------------------
    def app(self) -> web.Application:
        # one middleware: metrics (outermost, so they see the status code the client
        # gets), errors as Status, authentication (one coroutine call instead of three)
        app = web.Application(middlewares=[self._middleware], client_max_size=rest.MAX_BODY + 1024)

        async def stopping(_app: web.Application) -> None:
            self.shutting_down = True

        app.on_shutdown.append(stopping)
        app.on_response_prepare.append(self._deprecation_header)
        app.on_response_prepare.append(self._on_response_prepare)
        r = app.router
        # resource paths first: aiohttp tries the routes under "/api" ("/apis") in the
        # order added, and these (disjoint from the others) carry nearly every request
        r.add_route("*", "/api/{version}/{rest:.*}", self._core)
        r.add_route("*", "/apis/{group}/{version}/{rest:.*}", self._grouped)
        r.add_get("/version", self._version)
        # upstream serves its discovery roots with a trailing slash too (go-restful routes
        # "/" under each web service, the aggregator's mux "/apis/"): kr8s asks for
        # /version/, /api/ and /apis/
        r.add_get("/version/", self._version)
        r.add_get("/api/", self._api)
        r.add_get("/apis/", self._apis)
        r.add_get("/.well-known/openid-configuration", self._oidc_configuration)
        r.add_get("/openid/v1/jwks", self._oidc_jwks)
        r.add_get("/metrics", self.metrics.handle)  # bearer token required, like any non-public path
        for p in ("/healthz", "/livez", "/readyz"):
            r.add_get(p, self._health)
            r.add_get(p + "/{check:.*}", self._health)
        r.add_get("/api", self._api)
        r.add_get("/apis", self._apis)
        r.add_get("/openapi/v2", self._openapi_v2)
        r.add_get("/openapi/v3", self._openapi_v3_index)
        r.add_get("/openapi/v3/{path:.*}", self._openapi_v3)
        r.add_route("*", "/api/{version}", self._api_version)
        r.add_route("*", "/apis/{group}", self._api_group)
        r.add_route("*", "/apis/{group}/", self._api_group)
        r.add_route("*", "/apis/{group}/{version}", self._group_version)
        app.on_startup.append(self._start_cache)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _start_cache(self, app: web.Application) -> None:
        await self.watch_cache.ready()  # at startup, so a client's first watch finds its revision cached

    async def _cleanup(self, app: web.Application) -> None:
        if self.auditor is not None:
            self.auditor.log.close()
        if getattr(self, "crds", None) is not None:
            await self.crds.stop()
        if self._aggregator is not None:
            await self._aggregator.stop()
        if self._apf is not None:
            await self._apf.stop()
        await self.watch_cache.stop()
        await self.webhooks.close()
        if self._node_session:
            await self._node_session.close()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Request metrics (outermost: they see the status code the client gets),
        around errors as Status, around authentication; one coroutine call per
        request where three middlewares were three."""
        metrics = self.metrics
        labels, gauge, start = metrics.begin(request)
        code = 500
        # every request's audit ID (the Audit-Id response header), the client's own if it sent one
        request["audit_id"] = request.headers.get("Audit-ID") or audit.new_audit_id()
        rec: audit.Record | None = None
        try:
            user: dict[str, Any] | None = None
            # public paths (/version, /healthz) serve anonymous requests, but credentials
            # that fail to authenticate get 401 there too, as upstream's authentication
            # filter runs before the anonymous fallback (kr8s's test_bad_auth checks this)
            if self.tokens and (not request.path.startswith(PUBLIC_PATHS)
                                or "Authorization" in request.headers):
                auth = request.headers.get("Authorization", "")
                bearer = auth[7:] if auth.startswith("Bearer ") else _bearer(auth)
                if bearer not in self.tokens:
                    user = await satokens.authenticate(self, bearer) if bearer.count(".") == 2 else None
                    if user is None and bootstraptokens.is_bootstrap_token(bearer):
                        user = await bootstraptokens.authenticate(self, bearer)
                    if user is None and self.client_ca:  # no token: the client certificate's user, if any
                        user = csr.peer_user(request)
                    if user is None and not bearer and self.anonymous_auth:  # no credentials at all
                        user = authz.ANONYMOUS
                    if user is None:
                        e0 = errors.unauthorized()
                        resp = rest.pretty_printed(request, rest.status_response(e0))
                        code = resp.status
                        if self.auditor is not None:  # as upstream's failed-authentication audit
                            rec = self.auditor.begin(request, authz.request_attributes(
                                {}, request.method, request.path, request.query), None, None)
                            if rec is not None:
                                self.auditor.complete(rec, request, resp)
                        return resp
                    request["user"] = user
                elif bearer == self.node_token:
                    user = request["user"] = authz.NODE_USER
                else:
                    user = reviews.ADMIN  # the admin token: system:masters, no authorization needed
            try:
                if user is not None:
                    impersonator = None
                    if authz.wants_impersonation(request.headers):
                        impersonator = user
                        user = request["user"] = await authz.impersonate(self.authorizer, user, request.headers)
                    a = None
                    if self.auditor is not None:
                        a = authz.request_attributes(user, request.method, request.path, request.query)
                        rec = request["audit"] = self.auditor.begin(request, a, user, impersonator)
                    if authz.MASTERS not in user["groups"] and not self.authorizer.always_allow:
                        a = a or authz.request_attributes(user, request.method, request.path, request.query)
                        ok, why = await self.authorizer.authorize_fresh(a)
                        if rec is not None:
                            self.auditor.decided(rec, ok, why)  # type: ignore[union-attr]
                        if not ok:
                            raise authz.forbidden(a, why)
                    elif rec is not None:
                        self.auditor.decided(rec, True, "")  # type: ignore[union-attr]
                resp = await handler(request)
            except errors.StatusError as e:
                resp = rest.status_response(e)
            except web.HTTPRequestEntityTooLarge:
                e2 = errors.too_large()
                resp = rest.status_response(e2, 413)
            except web.HTTPNotFound:
                e3 = errors.StatusError(404, "NotFound", "the server could not find the requested resource",
                                        details={})
                resp = rest.status_response(e3, 404)
            except web.HTTPException:
                raise
            except (ConnectionResetError, asyncio.CancelledError):
                raise
            except Exception as e:  # never take the server down for one request
                log.exception("internal error on %s %s", request.method, request.path)
                e4 = errors.internal(repr(e))
                resp = rest.status_response(e4, 500)
            resp = rest.pretty_printed(request, resp)  # curl and ?pretty=true: indented
            code = resp.status
            if rec is not None:
                self.auditor.complete(rec, request, resp)  # type: ignore[union-attr]
            return resp
        except web.HTTPException as e:
            code = e.status
            raise
        finally:
            metrics.end(labels, gauge, start, code)

    async def _on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Headers going out: the Audit-Id on every response, and a long-running
        request's ResponseStarted stage."""
        audit_id = request.get("audit_id")
        if audit_id:
            response.headers["Audit-Id"] = audit_id
        rec = request.get("audit")
        if rec is not None and self.auditor is not None:
            self.auditor.started(rec, response.status)

    async def _version(self, request: web.Request) -> web.Response:
        # always indented (upstream writes it with json.MarshalIndent, whoever asks)
        return web.Response(body=orjson.dumps(discovery.VERSION_INFO, option=orjson.OPT_INDENT_2),
                            content_type="application/json")

    async def _oidc_configuration(self, request: web.Request) -> web.Response:
        """Service account issuer discovery (upstream's serviceaccount.openidmetadata):
        the issuer and where its keys are; the JWKS URI names this server as reached."""
        body = {"issuer": satokens.ISSUER, "jwks_uri": f"https://{request.host}/openid/v1/jwks",
                "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"]}
        return web.Response(body=orjson.dumps(body), content_type="application/json",
                            headers={"Cache-Control": "public, max-age=3600"})

    async def _oidc_jwks(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.sa_tokens.jwks()), content_type="application/jwk-set+json",
                            headers={"Cache-Control": "public, max-age=3600"})

    # what each health endpoint checks, in upstream's order (readyz adds etcd-readiness and,
    # last, shutdown: not ready once the server is stopping)
    _LIVE_CHECKS = ("ping", "log", "etcd", "poststarthook/start-kube-controllers-informers")
    _READY_CHECKS = ("ping", "log", "etcd", "etcd-readiness", "poststarthook/start-kube-controllers-informers",
                     "shutdown")

    async def _run_check(self, check: str) -> str | None:
        """None when the check passes, else why it failed."""
        if check in ("etcd", "etcd-readiness"):
            try:
                await self.storage.current_revision()
            except Exception as e:
                return str(e) or type(e).__name__
        elif check == "shutdown" and self.shutting_down:
            return "process is shutting down"
        return None

    async def _health(self, request: web.Request) -> web.Response:
        """/healthz, /livez, /readyz as upstream's healthz.handleRootHealth: `?verbose` lists
        the checks, `?exclude=<check>` skips one ("excluded: ok"), a failure is a 500 that
        lists every check with the reason withheld (it goes to the log); /<endpoint>/<check>
        runs one check."""
        name = request.path.strip("/").split("/")[0]
        checks = self._READY_CHECKS if name == "readyz" else self._LIVE_CHECKS
        text = "text/plain"
        check = request.match_info.get("check")
        if check:
            if check not in checks:
                raise errors.StatusError(404, "NotFound", "the server could not find the requested resource")
            why = await self._run_check(check)
            if why is not None:
                return web.Response(status=500, text=f"internal server error: {why}\n", content_type=text)
            return web.Response(text="ok", content_type=text)
        excluded = set(request.query.getall("exclude", []))
        lines, failed = [], []
        for c in checks:
            if c in excluded:
                excluded.discard(c)
                lines.append(f"[+]{c} excluded: ok")
                continue
            why = await self._run_check(c)
            if why is None:
                lines.append(f"[+]{c} ok")
            else:
                lines.append(f"[-]{c} failed: reason withheld")
                failed.append(f"[-]{c} failed: {why}")
        if excluded:
            quoted = ", ".join(orjson.dumps(c).decode() for c in sorted(excluded))
            lines.append(f"warn: some health checks cannot be excluded: no matches for {quoted}")
        if failed:
            log.warning("%s check failed: %s", name, "; ".join(failed))
            return web.Response(status=500, text="\n".join(lines) + f"\n{name} check failed\n", content_type=text)
        if "verbose" not in request.query:
            return web.Response(text="ok", content_type=text)
        return web.Response(text="\n".join(lines) + f"\n{name} check passed\n", content_type=text)

    def _discovery(self, request: web.Request, legacy_doc: Any, legacy: bool) -> web.Response:
        if discovery.wants_aggregated(request.headers.get("Accept", "")):
            return rest.json_response(discovery.aggregated(self.registry, legacy=legacy),
                                      content_type=discovery.AGGREGATED_CT)
        return rest.json_response(legacy_doc)

    async def _api(self, request: web.Request) -> web.Response:
        return self._discovery(request, discovery.api_versions(self.advertise), True)

    async def _apis(self, request: web.Request) -> web.Response:
        return self._discovery(request, discovery.api_group_list(self.registry), False)

    async def _api_version(self, request: web.Request) -> web.Response:
        doc = discovery.resource_list(self.registry, "", request.match_info["version"])
        if doc is None or request.method != "GET":
            raise web.HTTPNotFound()
        return rest.json_response(doc)

    async def _api_group(self, request: web.Request) -> web.Response:
        doc = discovery.api_group(self.registry, request.match_info["group"])
        if doc is None or request.method != "GET":
            raise web.HTTPNotFound()
        return rest.json_response(doc)

    async def _group_version(self, request: web.Request) -> web.Response:
        doc = discovery.resource_list(self.registry, request.match_info["group"], request.match_info["version"])
        if doc is None or request.method != "GET":
            raise web.HTTPNotFound()
        return rest.json_response(doc)

    async def _core(self, request: web.Request) -> web.StreamResponse:
        segs = [s for s in request.match_info["rest"].split("/") if s]
        if not segs and request.method == "GET":  # /api/v1/: the version's discovery document
            doc = discovery.resource_list(self.registry, "", request.match_info["version"])
            if doc is not None:
                return rest.json_response(doc)
        return await rest.handle(self, request, "", request.match_info["version"], segs)

    async def _grouped(self, request: web.Request) -> web.StreamResponse:
        segs = [s for s in request.match_info["rest"].split("/") if s]
        if not segs and request.method == "GET":  # /apis/apps/v1/: the discovery document
            group, version = request.match_info["group"], request.match_info["version"]
            doc = discovery.resource_list(self.registry, group, version)
            if doc is not None:
                return rest.json_response(doc)
        if request.match_info["group"] == metricsapi.GROUP:
            return await self.metrics_api.handle(request, request.match_info["version"], segs)
        crds = getattr(self, "crds", None)
        if crds is not None and crds.deprecations and segs:
            plural = segs[2] if segs[0] == "namespaces" and len(segs) > 2 else segs[0]
            w = crds.deprecations.get((request.match_info["group"], request.match_info["version"], plural))
            if w:
                request["deprecation"] = w
        return await rest.handle(self, request, request.match_info["group"], request.match_info["version"],
                                 segs)

    @staticmethod
    async def _deprecation_header(request: web.Request, response: web.StreamResponse) -> None:
        """A request to a deprecated CRD version gets upstream's Warning first, on every
        answer (watches too: this runs as the headers go out)."""
        w = request.get("deprecation")
        if w:
            cur = response.headers.get("Warning")
            mine = rest.warning_header([w])
            response.headers["Warning"] = f"{mine}, {cur}" if cur else mine

    # -- OpenAPI ------------------------------------------------------------------
    def _openapi_cache(self) -> dict[str, Any]:
        if not hasattr(self, "_oa"):
            self._oa: dict[str, Any] = {}
        return self._oa

    async def _openapi_v2(self, request: web.Request) -> web.Response:
        from kybern.api import openapi, openapi_proto

        # Content negotiation as kube-openapi: client-go's OpenAPISchema() (kubectl's
        # client-side validation, e.g. `apply -f` of a List) asks for gnostic protobuf.
        wants_proto = openapi_proto.wants_protobuf(request.headers.get("Accept", ""))
        if wants_proto is None:
            raise web.HTTPNotAcceptable()
        body, etag = openapi.v2_json(self.registry.all())
        headers = {"ETag": f'"{etag}"', "Vary": "Accept"}
        if request.headers.get("If-None-Match") == headers["ETag"]:
            return web.Response(status=304, headers=headers)
        if not wants_proto:
            return web.Response(body=body, content_type="application/json", headers=headers)
        # Encoding takes ~0.2 s once per document (cached by etag): keep it off the loop.
        data = await asyncio.to_thread(openapi_proto.encode, body, etag)
        headers["Content-Type"] = openapi_proto.CONTENT_TYPE
        return web.Response(body=data, headers=headers)

    async def _openapi_v3_index(self, request: web.Request) -> web.Response:
        from kybern.api import openapi

        return rest.json_response(openapi.v3_index(self.registry.all()))

    async def _openapi_v3(self, request: web.Request) -> web.Response:
        from kybern.api import openapi

        found = openapi.v3_path_json(request.match_info["path"].strip("/"), self.registry.all())
        if found is None:
            raise web.HTTPNotFound()
        body, etag = found
        return web.Response(body=body, content_type="application/json",
                            headers={"ETag": f'"{etag}"', "Cache-Control": "public, immutable"})


def ssl_context(cert_file: str, key_file: str, client_ca: str | None = None) -> ssl.SSLContext:
    # asyncio gives every TLS connection a 256 KiB receive buffer: 256 MB for a
    # thousand watches. 64 KiB still holds several 16 KiB TLS records per read.
    asyncio.sslproto.SSLProtocol.max_size = 64 * 1024
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca:
        # --client-ca-file: a client certificate is asked for, not required (token
        # clients send none); one that is sent must chain to the cluster CA
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)  # the CA predates SKI/AKI extensions
    return ctx
