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
log). Cluster-wide defaults and exemptions (usernames, runtime classes,
namespaces) come from kube-apiserver's AdmissionConfiguration file
(`kybern up --admission-control-config-file`, load_config()); without one every
mode defaults to privileged:latest, as upstream's. The checks themselves are in
podsecurity_checks.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
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


@dataclass(frozen=True)
class Config:
    """The plugin's PodSecurityConfiguration: defaults for unlabelled modes, exemptions."""
    defaults: psa.Policy = psa.DEFAULT_POLICY
    namespaces: frozenset[str] = field(default_factory=frozenset)
    runtime_classes: frozenset[str] = field(default_factory=frozenset)
    usernames: frozenset[str] = field(default_factory=frozenset)


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
CONFIG_VERSIONS = ("pod-security.admission.config.k8s.io/v1", "pod-security.admission.config.k8s.io/v1beta1",
                   "pod-security.admission.config.k8s.io/v1alpha1")


def load_config(path: str | Path) -> Config:
    """The PodSecurity plugin's configuration from kube-apiserver's
    --admission-control-config-file (an AdmissionConfiguration whose PodSecurity
    plugin has an inline `configuration` or a `path`), validated as upstream's
    ValidatePodSecurityConfiguration. ValueError says what is wrong."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "AdmissionConfiguration":
        raise ValueError(f"{path}: not an AdmissionConfiguration (apiVersion: apiserver.config.k8s.io/v1, "
                         f"kind: AdmissionConfiguration)")
    plugin = next((p for p in doc.get("plugins") or () if isinstance(p, dict) and p.get("name") == "PodSecurity"),
                  None)
    if plugin is None:
        return Config()
    conf = plugin.get("configuration")
    if conf is None and plugin.get("path"):
        conf_path = path.parent / str(plugin["path"])
        try:
            conf = yaml.safe_load(conf_path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"{conf_path}: {e}") from None
    if not isinstance(conf, dict):
        return Config()
    if conf.get("kind") != "PodSecurityConfiguration" or conf.get("apiVersion") not in CONFIG_VERSIONS:
        raise ValueError(f"{path}: the PodSecurity plugin's configuration must be a PodSecurityConfiguration "
                         f"({', '.join(CONFIG_VERSIONS)}), not {conf.get('apiVersion')}/{conf.get('kind')}")
    defaults = conf.get("defaults") or {}
    errs: list[str] = []
    modes = {}
    for mode in ("enforce", "warn", "audit"):
        level = str(defaults.get(mode) or psa.PRIVILEGED)
        version = str(defaults.get(f"{mode}-version") or psa.LATEST)
        if level not in psa.LEVELS:
            errs.append(f"defaults.{mode}: Invalid value: {psa._go_quote(level)}: must be one of "
                        f"{', '.join(psa.LEVELS)}")
        m = re.match(r"^v1\.([0-9]|[1-9][0-9]*)$", version)
        if version != psa.LATEST and not m:
            errs.append(f'defaults.{mode}-version: Invalid value: {psa._go_quote(version)}: must be "latest" '
                        f'or "v1.x"')
        modes[mode] = psa.LevelVersion(level, int(m.group(1)) if m else None)
    exemptions = conf.get("exemptions") or {}
    lists = {}
    for key, ok, why in (("namespaces", _DNS_LABEL.match, "a lowercase RFC 1123 label"),
                         ("runtimeClasses", _DNS_SUBDOMAIN.match, "a lowercase RFC 1123 subdomain"),
                         ("usernames", bool, "")):
        seen: set[str] = set()
        for i, v in enumerate(exemptions.get(key) or ()):
            v = str(v)
            where = f"exemptions.{key}[{i}]"
            if key == "usernames" and not v:
                errs.append(f"{where}: Required value")
            elif key != "usernames" and not ok(v):
                errs.append(f"{where}: Invalid value: {psa._go_quote(v)}: must be {why}")
            elif v in seen:
                errs.append(f"{where}: Duplicate value: {psa._go_quote(v)}")
            seen.add(v)
        lists[key] = frozenset(seen)
    if errs:
        raise ValueError(f"{path}: PodSecurity configuration invalid: [{', '.join(errs)}]" if len(errs) > 1
                         else f"{path}: PodSecurity configuration invalid: {errs[0]}")
    return Config(psa.Policy(modes["enforce"], modes["audit"], modes["warn"]), lists["namespaces"],
                  lists["runtimeClasses"], lists["usernames"])


def _username() -> str | None:
    """Who asks (the webhook context holds the request; in-process writes that did not
    come through the REST handler have none)."""
    from kybern.apiserver import admission_webhooks, reviews

    ctx = admission_webhooks.REQUEST.get()
    if ctx is None:
        return None
    user = ctx[0].get("user") or reviews.ADMIN
    return str(user.get("username") or "")


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
    def __init__(self, api: APIServer, config: Config | None = None) -> None:
        self.api = api
        self._policies: dict[tuple[str, int], tuple[psa.Policy, list[dict[str, str]]]] = {}
        self._ns_store: RESTStore | None = None
        self.config = Config()
        self._default: tuple[psa.Policy, list[dict[str, str]]] | None = None
        self.configure(config or Config())

    def configure(self, config: Config) -> None:
        """The cluster-wide defaults and exemptions (load_config())."""
        self.config = config
        # a namespace without labels: nothing to check unless the defaults say otherwise
        self._default = None if config.defaults.fully_privileged() else (config.defaults, [])
        self._policies.clear()

    def install(self, before_create: dict[tuple[str, str], CreateHook],
                before_update: dict[tuple[str, str], UpdateHook]) -> PodSecurity:
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
        return self

    # -- the namespace's policy ---------------------------------------------------
    def _namespaces(self) -> RESTStore:
        store = self._ns_store
        if store is None:
            store = self._ns_store = self.api.store("", "v1", "namespaces")
        return store

    async def policy(self, ns: str) -> tuple[psa.Policy, list[dict[str, str]]] | None:
        """The namespace's policy and its labels' errors; None when there is nothing
        to check (no label names a level and the defaults are privileged, or the
        namespace is exempt). Every pod create asks: the watch cache's entry
        answers, its labels read without decoding it."""
        if ns in self.config.namespaces:
            return None
        store = self._namespaces()
        cache = store.cache
        key = object_key(store.info, None, ns)
        rc = cache.resources.get(store.prefix)
        entry = rc.objects.get(key) if rc is not None and cache.is_ready() else await cache.get(store.prefix, key)
        if entry is not None:
            labels = entry.labels
            if not labels or not any(k.startswith(psa.LABEL_PREFIX) for k in labels):
                return self._default
            found = self._policies.get((ns, entry.rv))
            if found is None:
                if len(self._policies) > 1024:
                    self._policies.clear()
                found = self._policies[(ns, entry.rv)] = psa.policy_for(labels, self.config.defaults)
            return found
        try:  # not cached yet: a live read (upstream's namespace getter falls back to the client)
            obj = await store.get(None, ns)
        except errors.StatusError as e:
            if e.code == 404:
                return None
            raise
        labels = obj["metadata"].get("labels") or {}
        if not any(k.startswith(psa.LABEL_PREFIX) for k in labels):
            return self._default
        return psa.policy_for(labels, self.config.defaults)

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
        if self.config.usernames and _username() in self.config.usernames:
            return
        meta = (obj.get("metadata") or {}) if meta is None else meta
        spec = (obj.get("spec") or {}) if spec is None else spec
        if spec.get("runtimeClassName") and spec["runtimeClassName"] in self.config.runtime_classes:
            return
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

    def _exempt_warning(self, name: str, policy: psa.Policy, labels: dict[str, str]) -> None:
        """exemptNamespaceWarning: labels asking for a policy an exempt namespace ignores."""
        if policy.fully_privileged() or _equivalent(policy, self.config.defaults):
            return
        parts = []
        for mode in psa.MODES:
            lv: psa.LevelVersion = getattr(policy, mode)
            key = psa.LABEL_PREFIX + mode
            if lv.level != psa.PRIVILEGED and (key in labels or key + "-version" in labels):
                parts.append(f"{mode}={lv}")
        _warn(f'namespace "{name}" is exempt from Pod Security, and the policy ({", ".join(parts)}) will be '
              f"ignored")

    async def admit_namespace(self, ns: Obj) -> None:
        labels = ns["metadata"].get("labels") or {}
        policy, causes = psa.policy_for(labels, self.config.defaults)
        if causes:
            raise self._invalid(ns, causes)
        if ns["metadata"].get("name") in self.config.namespaces:
            self._exempt_warning(ns["metadata"]["name"], policy, labels)

    async def admit_namespace_update(self, new: Obj, old: Obj) -> None:
        """ValidateNamespace on update: labels that changed must be valid; a stricter
        enforce level is tried on the pods already in the namespace."""
        labels = new["metadata"].get("labels") or {}
        old_labels = old["metadata"].get("labels") or {}
        if not any(k.startswith(psa.LABEL_PREFIX) for k in (*labels, *old_labels)):
            return
        policy, causes = psa.policy_for(labels, self.config.defaults)
        old_policy, old_causes = psa.policy_for(old_labels, self.config.defaults)
        if causes and causes != old_causes:
            raise self._invalid(new, causes)
        new_e, old_e = policy.enforce, old_policy.enforce
        if new_e == old_e or new_e.level == psa.PRIVILEGED or (
                new_e.minor == old_e.minor and psa.compare_levels(new_e.level, old_e.level) < 1):
            return
        if new["metadata"]["name"] in self.config.namespaces:
            self._exempt_warning(new["metadata"]["name"], policy, labels)
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
            if (pod.get("spec") or {}).get("runtimeClassName") in self.config.runtime_classes:
                continue  # exempt runtime class
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


def _equivalent(a: psa.Policy, b: psa.Policy) -> bool:
    """Policy.Equivalent: the same levels, and versions where the level is not privileged."""
    return all(x.level == y.level and (x.level == psa.PRIVILEGED or x.minor == y.minor)
               for x, y in ((a.enforce, b.enforce), (a.audit, b.audit), (a.warn, b.warn)))


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
