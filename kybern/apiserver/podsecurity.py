"""The PodSecurity admission plugin (k8s.io/pod-security-admission), on by default
as in kube-apiserver since 1.25: namespaces choose a Pod Security Standards level
per mode with the `pod-security.kubernetes.io/{enforce,audit,warn}[-version]`
labels, and

- pods (create, and updates that change an image or add an ephemeral container)
  that fail the enforce level are refused (403 `violates PodSecurity
  "restricted:latest": ...`); those that fail the warn level get a Warning header,
- the pod templates of workload objects (Deployments, ReplicaSets, StatefulSets,
  DaemonSets, Jobs, CronJobs, ReplicationControllers, PodTemplates) are checked
  against the warn level only: warnings, never a refusal,
- a namespace's labels must be valid (422), and raising its enforce level checks
  the pods already there, answering with warnings naming those that would fail.

The audit level is parsed and validated but records nothing (there is no audit
log). There is no exemptions configuration (usernames, runtime classes,
namespaces): the defaults are privileged:latest for every mode, as upstream's.
The checks themselves are in podsecurity_checks.py.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kybern.apiserver import podsecurity_checks as psa
from kybern.apiserver import store as store_mod
from kybern.apiserver.store import Predicate, key_prefix, object_key
from kybern.machinery import errors

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer
    from kybern.apiserver.store import RESTStore

Obj = dict[str, Any]
CreateHook = Callable[[Obj], Awaitable[None]]
UpdateHook = Callable[[Obj, Obj], Awaitable[None]]

# where each workload kind keeps its pod template (DefaultPodSpecExtractor)
TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "replicationcontrollers"): ("spec", "template"),
    ("", "podtemplates"): ("template",),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}
MAX_PODS_TO_CHECK = 3000  # a namespace's pods checked when its enforce level rises
POD_CHECK_SECONDS = 1.0


def _warn(message: str) -> None:
    """A Warning header on the response to the write being admitted."""
    warnings = store_mod.ADMISSION_WARNINGS.get()
    if warnings is not None and message not in warnings:
        warnings.append(message)


def _chain(first: Callable[..., Awaitable[None]] | None,
           then: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    if first is None:
        return then

    async def both(*args: Any) -> None:
        await first(*args)
        await then(*args)
    return both


class PodSecurity:
    def __init__(self, api: APIServer) -> None:
        self.api = api
        self._policies: dict[tuple[str, int], tuple[psa.Policy, list[dict[str, str]]]] = {}
        self._ns_store: RESTStore | None = None

    def install(self, before_create: dict[tuple[str, str], CreateHook],
                before_update: dict[tuple[str, str], UpdateHook]) -> None:
        """Adds the plugin's checks to the apiserver's admission hooks (after the
        mutating ones already there: PodSecurity is a validating plugin)."""
        before_create[("", "pods")] = _chain(before_create.get(("", "pods")), self.admit_pod)
        before_update[("", "pods")] = _chain(before_update.get(("", "pods")), self.admit_pod_update)
        before_create[("", "namespaces")] = _chain(before_create.get(("", "namespaces")), self.admit_namespace)
        before_update[("", "namespaces")] = _chain(before_update.get(("", "namespaces")),
                                                   self.admit_namespace_update)
        for key, path in TEMPLATES.items():
            before_create[key] = _chain(before_create.get(key), self._template_check(path))
            before_update[key] = _chain(before_update.get(key), self._template_update_check(path))

    # -- the namespace's policy ---------------------------------------------------
    def _namespaces(self) -> RESTStore:
        store = self._ns_store
        if store is None:
            store = self._ns_store = self.api.store("", "v1", "namespaces")
        return store

    async def policy(self, ns: str) -> tuple[psa.Policy, list[dict[str, str]]] | None:
        """The namespace's policy and its labels' errors; None when no label names
        one (privileged everywhere: nothing to check). Every pod create asks: the
        watch cache's entry answers, its labels read without decoding it."""
        store = self._namespaces()
        cache = store.cache
        key = object_key(store.info, None, ns)
        rc = cache.resources.get(store.prefix)
        entry = rc.objects.get(key) if rc is not None and cache.is_ready() else await cache.get(store.prefix, key)
        if entry is not None:
            labels = entry.labels
            if not labels or not any(k.startswith(psa.LABEL_PREFIX) for k in labels):
                return None
            found = self._policies.get((ns, entry.rv))
            if found is None:
                if len(self._policies) > 1024:
                    self._policies.clear()
                found = self._policies[(ns, entry.rv)] = psa.policy_for(labels)
            return found
        try:  # not cached yet: a live read (upstream's namespace getter falls back to the client)
            obj = await store.get(None, ns)
        except errors.StatusError as e:
            if e.code == 404:
                return None
            raise
        labels = obj["metadata"].get("labels") or {}
        if not any(k.startswith(psa.LABEL_PREFIX) for k in labels):
            return None
        return psa.policy_for(labels)

    # -- pods ---------------------------------------------------------------------------
    async def admit_pod(self, pod: Obj) -> None:
        found = await self.policy(pod["metadata"].get("namespace") or "default")
        if found is not None:
            self._evaluate(found, pod, enforce=True)

    async def admit_pod_update(self, new: Obj, old: Obj) -> None:
        if not _significant_update(new, old):
            return  # nothing PodSecurity looks at can have changed (labels, status, ...)
        found = await self.policy(new["metadata"].get("namespace") or "default")
        if found is not None:
            self._evaluate(found, new, enforce=True)

    def _evaluate(self, found: tuple[psa.Policy, list[dict[str, str]]], obj: Obj, *, enforce: bool,
                  meta: Obj | None = None, spec: Obj | None = None) -> None:
        """EvaluatePod: the enforce level refuses (pods only), the warn level warns
        (unless refused). The audit level has no log to go to."""
        policy, label_errors = found
        if not label_errors and policy.fully_privileged():
            return
        meta = (obj.get("metadata") or {}) if meta is None else meta
        spec = (obj.get("spec") or {}) if spec is None else spec
        results: dict[psa.LevelVersion, list[tuple[str, str]]] = {}
        if enforce:
            results[policy.enforce] = failed = psa.evaluate(policy.enforce, meta, spec)
            if failed:
                name = (obj.get("metadata") or {}).get("name", "")
                raise errors.StatusError(
                    403, "Forbidden", f'pods "{name}" is forbidden: violates PodSecurity "{policy.enforce}": '
                    f"{psa.forbidden_detail(failed)}", details={"name": name, "kind": "pods"})
        warned = results.get(policy.warn)
        if warned is None:
            warned = psa.evaluate(policy.warn, meta, spec)
        if warned:
            _warn(f'would violate PodSecurity "{policy.warn}": {psa.forbidden_detail(warned)}')

    # -- workload objects -------------------------------------------------------------
    def _template_check(self, path: tuple[str, ...]) -> CreateHook:
        async def check(obj: Obj) -> None:
            found = await self.policy(obj["metadata"].get("namespace") or "default")
            if found is None:
                return
            policy, label_errors = found
            if not label_errors and policy.warn.level == psa.PRIVILEGED and policy.audit.level == psa.PRIVILEGED:
                return
            template: Any = obj
            for p in path:
                template = template.get(p) if isinstance(template, dict) else None
            if not isinstance(template, dict):
                return  # a ReplicationController without a template: nothing to check
            self._evaluate(found, obj, enforce=False, meta=template.get("metadata") or {},
                           spec=template.get("spec") or {})
        return check

    def _template_update_check(self, path: tuple[str, ...]) -> UpdateHook:
        check = self._template_check(path)

        async def on_update(new: Obj, old: Obj) -> None:
            await check(new)
        return on_update

    # -- namespaces ---------------------------------------------------------------------
    @staticmethod
    def _invalid(ns: Obj, causes: list[dict[str, str]]) -> errors.StatusError:
        return errors.invalid("", "Namespace", ns["metadata"].get("name", ""), causes)

    async def admit_namespace(self, ns: Obj) -> None:
        _, causes = psa.policy_for(ns["metadata"].get("labels"))
        if causes:
            raise self._invalid(ns, causes)

    async def admit_namespace_update(self, new: Obj, old: Obj) -> None:
        """ValidateNamespace on update: labels that changed must be valid; a stricter
        enforce level is tried on the pods already in the namespace."""
        labels = new["metadata"].get("labels") or {}
        old_labels = old["metadata"].get("labels") or {}
        if not any(k.startswith(psa.LABEL_PREFIX) for k in (*labels, *old_labels)):
            return
        policy, causes = psa.policy_for(labels)
        old_policy, old_causes = psa.policy_for(old_labels)
        if causes and causes != old_causes:
            raise self._invalid(new, causes)
        new_e, old_e = policy.enforce, old_policy.enforce
        if new_e == old_e or new_e.level == psa.PRIVILEGED or (
                new_e.minor == old_e.minor and psa.compare_levels(new_e.level, old_e.level) < 1):
            return
        for w in await self._existing_pods(new["metadata"]["name"], new_e):
            _warn(w)

    async def _existing_pods(self, ns: str, enforce: psa.LevelVersion) -> list[str]:
        """EvaluatePodsInNamespace: one pod per controller first, at most 3000 pods
        or a second; pods failing alike share one warning naming the first of them."""
        store = self.api.store("", "v1", "pods")
        entries, _ = await store.cache.list(store.prefix, key_prefix(store.info, ns), Predicate())
        pods = [e.decode() for e in entries]
        first, rest, controllers = [], [], set()
        for pod in pods:
            ref = next((r for r in pod["metadata"].get("ownerReferences") or () if r.get("controller")), None)
            if ref is None:
                first.append(pod)
            elif ref.get("uid") in controllers:
                rest.append(pod)
            else:
                controllers.add(ref.get("uid"))
                first.append(pod)
        ordered = (first + rest)[:MAX_PODS_TO_CHECK]
        deadline = time.monotonic() + POD_CHECK_SECONDS
        counts: dict[str, list[Any]] = {}  # reason -> [lexically first pod name, count]
        checked = len(ordered)
        for i, pod in enumerate(ordered):
            failed = psa.evaluate(enforce, pod.get("metadata") or {}, pod.get("spec") or {})
            if failed:
                reason = psa.forbidden_reason(failed)
                name = pod["metadata"].get("name", "")
                c = counts.setdefault(reason, [name, 0])
                c[0] = min(c[0], name)
                c[1] += 1
            if time.monotonic() > deadline:
                checked = i + 1
                break
        warnings = []
        if checked < len(pods):
            warnings.append(f"new PodSecurity enforce level only checked against the first {checked} of "
                            f"{len(pods)} existing pods")
        if counts:
            warnings.append(f'existing pods in namespace "{ns}" violate the new PodSecurity enforce level '
                            f'"{enforce}"')
        lines = []
        for reason, (name, n) in counts.items():
            who = name if n == 1 else f"{name} (and 1 other pod)" if n == 2 else f"{name} (and {n - 1} other pods)"
            lines.append(f"{who}: {reason}")
        return warnings + sorted(lines)


def _significant_update(new: Obj, old: Obj) -> bool:
    """isSignificantPodUpdate: only images, containers added, seccomp annotations and
    ephemeral containers change what PodSecurity sees of a running pod."""
    spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    ann = new["metadata"].get("annotations") or {}
    old_ann = old["metadata"].get("annotations") or {}
    if ann.get("seccomp.security.alpha.kubernetes.io/pod") != old_ann.get("seccomp.security.alpha.kubernetes.io/pod"):
        return True

    def changed(c: Obj, o: Obj) -> bool:
        key = "container.seccomp.security.alpha.kubernetes.io/" + str(c.get("name") or "")
        return c.get("image") != o.get("image") or ann.get(key) != old_ann.get(key)

    for key in ("containers", "initContainers"):
        cs, olds = spec.get(key) or [], old_spec.get(key) or []
        if len(cs) != len(olds) or any(changed(c, o) for c, o in zip(cs, olds, strict=True)):
            return True
    old_eph = {c.get("name"): c for c in old_spec.get("ephemeralContainers") or ()}
    for c in spec.get("ephemeralContainers") or ():
        o = old_eph.get(c.get("name"))
        if o is None or changed(c, o):
            return True
    return False
