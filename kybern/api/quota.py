"""What objects count against a ResourceQuota (pkg/quota/v1/evaluator/core), shared
by the apiserver's ResourceQuota admission and the resource quota controller that
keeps `status.used`.

Supported names: `pods`, `services`, `configmaps`, `secrets`,
`persistentvolumeclaims`, `replicationcontrollers`, `resourcequotas`,
`services.nodeports`, `services.loadbalancers`, `count/<resource>[.<group>]`,
`cpu`/`memory`/`requests.*`/`limits.*` (pods: cpu, memory, ephemeral-storage) and
`requests.storage` (claims)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kybern.machinery import quantity

Obj = dict[str, Any]

# object-count names and the (group, plural) they count
COUNTS = {"pods": ("", "pods"), "services": ("", "services"), "configmaps": ("", "configmaps"),
          "secrets": ("", "secrets"), "persistentvolumeclaims": ("", "persistentvolumeclaims"),
          "replicationcontrollers": ("", "replicationcontrollers"), "resourcequotas": ("", "resourcequotas")}
POD_COMPUTE = ("cpu", "memory", "ephemeral-storage")


def counted_kind(name: str) -> tuple[str, str] | None:
    """The (group, plural) a quota resource name counts objects of, if it is a count."""
    if name in COUNTS:
        return COUNTS[name]
    if name.startswith("count/"):
        plural, _, group = name[len("count/"):].partition(".")
        return group, plural
    if name in ("services.nodeports", "services.loadbalancers"):
        return "", "services"
    return None


def pod_counts(pod: Obj) -> bool:
    """A pod uses quota until it is terminal (QuotaV1Pod)."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _sum(containers: list[Obj], kind: str, res: str) -> Decimal:
    total = Decimal(0)
    for c in containers:
        v = ((c.get("resources") or {}).get(kind) or {}).get(res)
        if v is not None:
            total += quantity.value(v)
    return total


def pod_compute(pod: Obj, kind: str, res: str) -> Decimal:
    """A pod's requests/limits of `res`: the containers' sum, or the largest init
    container's if that is more (PodRequests/PodLimits)."""
    spec = pod.get("spec") or {}
    total = _sum(spec.get("containers") or [], kind, res)
    for c in spec.get("initContainers") or []:
        total = max(total, _sum([c], kind, res))
    return total


def _requested_resource(name: str) -> str | None:
    """The container resource a quota name beyond cpu/memory/ephemeral-storage stands
    for: hugepages (`hugepages-2Mi`, `requests.hugepages-2Mi`) and extended resources,
    quota'd only as `requests.<domain>/<name>` since they cannot be overcommitted
    (upstream's podComputeUsageHelper, isExtendedResourceNameForQuota)."""
    if name.startswith("hugepages-"):
        return name
    if name.startswith("requests."):
        res = name[len("requests."):]
        if res.startswith("hugepages-") or ("/" in res and "kubernetes.io/" not in res):
            return res
    return None


def _pod_usage(pod: Obj, name: str) -> Decimal | None:
    if name in POD_COMPUTE:
        return pod_compute(pod, "requests", name)
    kind, _, res = name.partition(".")
    if kind in ("requests", "limits") and res in POD_COMPUTE:
        return pod_compute(pod, kind, res)
    requested = _requested_resource(name)
    if requested is not None:
        return pod_compute(pod, "requests", requested)
    return None


def usage(group: str, plural: str, obj: Obj, names: list[str]) -> dict[str, Decimal]:
    """What one object of (group, plural) adds to each of `names` (those it touches)."""
    out: dict[str, Decimal] = {}
    for name in names:
        counted = counted_kind(name)
        if counted is not None and counted == (group, plural):
            # `pods` tracks pods not yet terminal; `count/pods` every pod in storage (PodUsageFunc)
            if name == "pods" and not pod_counts(obj):
                continue
            spec = obj.get("spec") or {}
            if name == "services.nodeports":
                if spec.get("type") in ("NodePort", "LoadBalancer"):
                    out[name] = Decimal(len(spec.get("ports") or []))
                continue
            if name == "services.loadbalancers":
                if spec.get("type") == "LoadBalancer":
                    out[name] = Decimal(1)
                continue
            out[name] = Decimal(1)
        elif (group, plural) == ("", "pods") and pod_counts(obj):
            v = _pod_usage(obj, name)
            if v is not None:
                out[name] = v
        elif (group, plural) == ("", "persistentvolumeclaims") and name == "requests.storage":
            req = (((obj.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
            if req is not None:
                out[name] = quantity.value(req)
        elif (group, plural) == ("", "persistentvolumeclaims") and _class_resource(name):
            cls, what = _class_resource(name)  # type: ignore[misc]
            if _claim_class(obj) != cls:
                continue
            if what == "persistentvolumeclaims":
                out[name] = Decimal(1)
            else:
                req = (((obj.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
                if req is not None:
                    out[name] = quantity.value(req)
    return out


_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"


def _class_resource(name: str) -> tuple[str, str] | None:
    """`<class>.storageclass.storage.k8s.io/persistentvolumeclaims|requests.storage`:
    claims of one storage class (upstream's pvc evaluator)."""
    cls, sep, what = name.partition(_CLASS_SUFFIX)
    if sep and cls and what in ("persistentvolumeclaims", "requests.storage"):
        return cls, what
    return None


def _claim_class(pvc: Obj) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation, else spec.storageClassName."""
    ann = (pvc.get("metadata") or {}).get("annotations") or {}
    if "volume.beta.kubernetes.io/storage-class" in ann:
        return ann["volume.beta.kubernetes.io/storage-class"]
    return (pvc.get("spec") or {}).get("storageClassName") or ""


def _qos_best_effort(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        if (res.get("requests") or {}) or (res.get("limits") or {}):
            return False
    return True


def _scope_matches(scope: str, op: str, values: list[str], pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    if scope == "Terminating":
        return spec.get("activeDeadlineSeconds") is not None
    if scope == "NotTerminating":
        return spec.get("activeDeadlineSeconds") is None
    if scope == "BestEffort":
        return _qos_best_effort(pod)
    if scope == "NotBestEffort":
        return not _qos_best_effort(pod)
    if scope == "PriorityClass":
        pc = spec.get("priorityClassName") or ""
        if op == "In":
            return pc in values
        if op == "NotIn":
            return pc not in values
        if op == "Exists":
            return bool(pc)
        if op == "DoesNotExist":
            return not pc
    if scope == "CrossNamespacePodAffinity":
        return _cross_namespace_affinity(spec)
    return False


def _cross_namespace_affinity(spec: Obj) -> bool:
    """usesCrossNamespacePodAffinity: a pod (anti-)affinity term, required or
    preferred, naming `namespaces` or a `namespaceSelector` (even an empty one)."""
    affinity = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        a = affinity.get(kind) or {}
        terms = list(a.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [w.get("podAffinityTerm") or {} for w in a.get("preferredDuringSchedulingIgnoredDuringExecution") or []
                  if isinstance(w, dict)]
        if any(isinstance(t, dict) and (t.get("namespaces") or t.get("namespaceSelector") is not None) for t in terms):
            return True
    return False


def applies_to(quota_obj: Obj, group: str, plural: str, obj: Obj) -> bool:
    """Whether a quota counts this object: a quota with scopes (`spec.scopes`,
    `spec.scopeSelector`) counts only the pods they match (resourcequota Matches)."""
    spec = quota_obj.get("spec") or {}
    scopes = [(s, "Exists", []) for s in spec.get("scopes") or []]
    for e in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        scopes.append((e.get("scopeName", ""), e.get("operator", ""), list(e.get("values") or [])))
    if not scopes:
        return True
    if (group, plural) != ("", "pods"):
        return False
    return all(_scope_matches(s, op, vals, obj) for s, op, vals in scopes)


def kinds_for(names: list[str]) -> set[tuple[str, str]]:
    """The (group, plural) whose objects a quota with these names has to look at."""
    out: set[tuple[str, str]] = set()
    for name in names:
        counted = counted_kind(name)
        if counted is not None:
            out.add(counted)
        elif _is_pod_compute(name):
            out.add(("", "pods"))
        elif name == "requests.storage" or _class_resource(name):
            out.add(("", "persistentvolumeclaims"))
    return out


def _is_pod_compute(name: str) -> bool:
    kind, _, res = name.partition(".")
    return name in POD_COMPUTE or (kind in ("requests", "limits") and res in POD_COMPUTE) or \
        _requested_resource(name) is not None


def text(name: str, amount: Decimal, hard: object = None) -> str:
    """A used amount written as upstream's status shows it (in the hard value's format)."""
    fmt = "DecimalSI"
    if hard is not None:
        try:
            fmt = quantity.parse(hard)[1]
        except ValueError:
            pass
    if counted_kind(name) is not None:
        fmt = "DecimalSI"
    return quantity.text(amount, fmt)
