"""Admission of what objects may use in a namespace: the LimitRanger plugin
(plugin/pkg/admission/limitranger: container defaults from a LimitRange, then its
min/max/maxLimitRequestRatio per Container and per Pod) and the ResourceQuota
plugin (plugin/pkg/admission/resourcequota: a create that would take a namespace
past a quota's `hard` is refused). Both read LimitRanges, ResourceQuotas and the
counted objects from the watch cache, as the plugins read their informers; the
usage is recounted at each create rather than charged to `status.used` (the
resource quota controller keeps that), so two creates racing for the last unit
can both pass."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kybern.api import quota
from kybern.apiserver.store import CREATE_DRY_RUN, Predicate, key_prefix
from kybern.machinery import errors, quantity

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

Obj = dict[str, Any]


async def _entries(server: APIServer, group: str, plural: str, namespace: str) -> list[Any]:
    info = server.registry.get(group, "v1", plural)
    if info is None:
        return []
    store = server.store_for(info)
    cached = store.cache.resources.get(store.prefix)
    if cached is not None and not cached.objects and store.cache.is_ready():
        return []  # the common case (no LimitRange, no quota anywhere): every pod create asks
    entries, _ = await store.cache.list(store.prefix, key_prefix(info, namespace), Predicate())
    return entries


async def _list(server: APIServer, group: str, plural: str, namespace: str) -> list[Obj]:
    return [e.decode() for e in await _entries(server, group, plural, namespace)]


_TERMINAL = (b'"phase":"Succeeded"', b'"phase":"Failed"')


async def _used(server: APIServer, ns: str, names: list[str], q: Obj | None = None) -> dict[str, Decimal]:
    """The namespace's usage of `names`. Plain object counts are counted from the cache's
    entries without decoding them (a pod's phase read from its bytes)."""
    used: dict[str, Decimal] = {n: Decimal(0) for n in names}
    for g, p in quota.kinds_for(names):
        here = [n for n in names if (g, p) in quota.kinds_for([n])]
        entries = await _entries(server, g, p, ns)
        scoped = q is not None and bool((q.get("spec") or {}).get("scopes") or
                                        (q.get("spec") or {}).get("scopeSelector"))
        plain = [] if scoped else \
            [n for n in here if quota.counted_kind(n) == (g, p) and not n.startswith("services.")]
        for n in plain:  # `pods` stops at a terminal phase, `count/pods` does not
            used[n] += sum(1 for e in entries if n != "pods" or not any(t in e.raw for t in _TERMINAL))
        rest = [n for n in here if n not in plain]
        for e in entries if rest else ():
            other = e.decode()
            if q is not None and not quota.applies_to(q, g, p, other):
                continue
            for n, v in quota.usage(g, p, other, rest).items():
                used[n] += v
    return used


def _forbidden(plural: str, group: str, name: str, why: str) -> errors.StatusError:
    return errors.forbidden_object(group, plural, name, why)


# -- LimitRanger --------------------------------------------------------------------------
def _merge_defaults(c: Obj, default: Obj, default_request: Obj, where: str) -> list[str]:
    res = c.setdefault("resources", {})
    limits, requests = dict(res.get("limits") or {}), dict(res.get("requests") or {})
    set_limits = [k for k in default if k not in limits]
    set_requests = [k for k in default_request if k not in requests]
    for k in set_limits:
        limits[k] = default[k]
    for k in set_requests:
        requests[k] = default_request[k]
    if limits:
        res["limits"] = limits
    if requests:
        res["requests"] = requests
    notes = []
    if set_requests:
        notes.append(f"{', '.join(sorted(set_requests))} request for {where} {c.get('name')}")
    if set_limits:
        notes.append(f"{', '.join(sorted(set_limits))} limit for {where} {c.get('name')}")
    return notes


def _min(kind: str, res: str, enforced: Any, req: Obj, lim: Obj) -> str | None:
    e = quantity.value(enforced)
    if res not in req:
        return f"minimum {res} usage per {kind} is {quantity.canonical(enforced)}.  No request is specified"
    if quantity.value(req[res]) < e:
        return f"minimum {res} usage per {kind} is {quantity.canonical(enforced)}, but request is " \
               f"{quantity.canonical(req[res])}"
    if res in lim and quantity.value(lim[res]) < e:
        return f"minimum {res} usage per {kind} is {quantity.canonical(enforced)}, but limit is " \
               f"{quantity.canonical(lim[res])}"
    return None


def _max(kind: str, res: str, enforced: Any, req: Obj, lim: Obj) -> str | None:
    e = quantity.value(enforced)
    if res not in lim:
        return f"maximum {res} usage per {kind} is {quantity.canonical(enforced)}.  No limit is specified"
    if quantity.value(lim[res]) > e:
        return f"maximum {res} usage per {kind} is {quantity.canonical(enforced)}, but limit is " \
               f"{quantity.canonical(lim[res])}"
    if res in req and quantity.value(req[res]) > e:
        return f"maximum {res} usage per {kind} is {quantity.canonical(enforced)}, but request is " \
               f"{quantity.canonical(req[res])}"
    return None


def _ratio(kind: str, res: str, enforced: Any, req: Obj, lim: Obj) -> str | None:
    r = quantity.value(req[res]) if res in req else Decimal(0)
    m = quantity.value(lim[res]) if res in lim else Decimal(0)
    shown = quantity.canonical(enforced)
    if r == 0:
        return f"{res} max limit to request ratio per {kind} is {shown}, but no request is specified or " \
               "request is 0"
    if m == 0:
        return f"{res} max limit to request ratio per {kind} is {shown}, but no limit is specified or limit is 0"
    observed = m / r
    if observed > quantity.value(enforced):
        return f"{res} max limit to request ratio per {kind} is {shown}, but provided ratio is {float(observed):f}"
    return None


def _check(kind: str, item: Obj, req: Obj, lim: Obj) -> list[str]:
    out: list[str] = []
    for field, check in (("min", _min), ("max", _max), ("maxLimitRequestRatio", _ratio)):
        for res, enforced in sorted((item.get(field) or {}).items()):
            why = check(kind, res, enforced, req, lim)
            if why:
                out.append(why)
    return out


def _pod_totals(pod: Obj, kind: str) -> Obj:
    out: Obj = {}
    names: set[str] = set()
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        names.update(((c.get("resources") or {}).get(kind) or {}).keys())
    for res in names:
        out[res] = str(quota.pod_compute(pod, kind, res))
    return out


async def limit_ranger(server: APIServer, pod: Obj) -> bool:
    """Container defaults from the namespace's LimitRanges, then their constraints.
    True if it set any default."""
    m = pod["metadata"]
    ranges = await _list(server, "", "limitranges", m.get("namespace") or "default")
    if not ranges:
        return False
    spec = pod.setdefault("spec", {})
    notes: list[str] = []
    items = [item for lr in ranges for item in ((lr.get("spec") or {}).get("limits") or [])]
    for item in items:
        if item.get("type") != "Container":
            continue
        default, default_request = item.get("default") or {}, item.get("defaultRequest") or {}
        if not default and not default_request:
            continue
        for c in spec.get("containers") or []:
            notes += _merge_defaults(c, default, default_request, "container")
        for c in spec.get("initContainers") or []:
            notes += _merge_defaults(c, default, default_request, "init container")
    if notes:
        m.setdefault("annotations", {})["kubernetes.io/limit-ranger"] = "LimitRanger plugin set: " + \
            "; ".join(notes)
    problems: list[str] = []
    for item in items:
        if item.get("type") == "Container":
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                res = c.get("resources") or {}
                problems += _check("Container", item, res.get("requests") or {}, res.get("limits") or {})
        elif item.get("type") == "Pod":
            problems += _check("Pod", item, _pod_totals(pod, "requests"), _pod_totals(pod, "limits"))
    if problems:
        why = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
        raise _forbidden("pods", "", m.get("name", ""), why)
    return bool(notes)


async def limit_ranger_claim(server: APIServer, pvc: Obj) -> None:
    """PersistentVolumeClaimValidateLimitFunc: the claim's requests against the
    `PersistentVolumeClaim` items' min and max."""
    m = pvc["metadata"]
    ranges = await _list(server, "", "limitranges", m.get("namespace") or "default")
    requests = (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {})
    problems: list[str] = []
    for item in (i for lr in ranges for i in ((lr.get("spec") or {}).get("limits") or [])):
        if item.get("type") != "PersistentVolumeClaim":
            continue
        kind = "PersistentVolumeClaim"
        for res, enforced in sorted((item.get("min") or {}).items()):
            why = _min(kind, res, enforced, requests, {})
            if why:
                problems.append(why)
        for res, enforced in sorted((item.get("max") or {}).items()):
            shown = quantity.canonical(enforced)
            if res not in requests:
                problems.append(f"maximum {res} usage per {kind} is {shown}.  No request is specified")
            elif quantity.value(requests[res]) > quantity.value(enforced):
                problems.append(f"maximum {res} usage per {kind} is {shown}, but request is "
                                f"{quantity.canonical(requests[res])}")
    if problems:
        why = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
        raise _forbidden("persistentvolumeclaims", "", m.get("name", ""), why)


# -- ResourceQuota ------------------------------------------------------------------------
_MUST_SPECIFY = {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}


def _container_names(c: Obj) -> set[str]:
    res = c.get("resources") or {}
    out: set[str] = set()
    for r in (res.get("requests") or {}):
        if r in ("cpu", "memory"):
            out.update((r, f"requests.{r}"))
    for r in (res.get("limits") or {}):
        if r in ("cpu", "memory"):
            out.add(f"limits.{r}")
    return out


def _constraints(pod: Obj, required: set[str]) -> str | None:
    """The pod evaluator's Constraints: with cpu/memory quota'd, every container names them."""
    required &= _MUST_SPECIFY
    if not required:
        return None
    missing: dict[str, set[str]] = {}
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for r in required - _container_names(c):
            missing.setdefault(r, set()).add(str(c.get("name")))
    if not missing:
        return None
    return "must specify " + "; ".join(f"{r} for: {','.join(sorted(missing[r]))}" for r in sorted(missing))


async def resource_quota(server: APIServer, group: str, plural: str, obj: Obj) -> None:
    """Refuse a create that a quota of its namespace does not leave room for, and charge
    what it adds to the quota's `status.used` (a write guarded by the quota's revision,
    retried on a race, as upstream's quota evaluator does), so the next create sees it
    before the resourcequota controller recounts. A quota the controller has not
    counted yet is counted here from the watch cache."""
    m = obj["metadata"]
    ns = m.get("namespace") or "default"
    quota_entries = await _entries(server, "", "resourcequotas", ns)
    if not quota_entries:
        return
    quotas = sorted((e.decode() for e in quota_entries), key=lambda q: q["metadata"]["name"])
    charges: list[tuple[str, dict[str, Decimal]]] = []
    for q in quotas:
        if not quota.applies_to(q, group, plural, obj):
            continue
        hard = (q.get("spec") or {}).get("hard") or {}
        names = sorted(hard)
        if (group, plural) == ("", "pods"):
            why = _constraints(obj, set(names))
            if why:
                raise _forbidden(plural, group, m.get("name", ""), f"failed quota: {q['metadata']['name']}: {why}")
        delta = quota.usage(group, plural, obj, names)
        if delta:
            charges.append((q["metadata"]["name"], delta))
    if not charges:
        return
    store = server.store("", "v1", "resourcequotas")
    dry_run = CREATE_DRY_RUN.get()
    for qname, delta in charges:
        recount: dict[str, Decimal] = {}

        def charge(cur: Obj | None, qname: str = qname, delta: dict[str, Decimal] = delta,
                   recount: dict[str, Decimal] = recount) -> Obj:
            if cur is None:  # deleted meanwhile: nothing to charge
                raise errors.not_found("", "resourcequotas", qname)
            hard = (cur.get("spec") or {}).get("hard") or {}
            st = cur.get("status") or {}
            used_now = st.get("used") or {}
            known = st.get("hard") == hard
            used = {n: (quantity.value(used_now[n]) if known and n in used_now else recount[n])
                    for n in delta if n in hard}
            over = [n for n in sorted(used) if used[n] + delta[n] > quantity.value(hard[n])]
            if over:  # prettyPrint: sorted name=value, comma-separated
                requested = ",".join(f"{n}={quota.text(n, delta[n], hard[n])}" for n in over)
                in_use = ",".join(f"{n}={quota.text(n, used[n], hard[n])}" for n in over)
                limited = ",".join(f"{n}={quantity.canonical(hard[n])}" for n in over)
                raise _forbidden(plural, group, m.get("name", ""),
                                 f"exceeded quota: {qname}, requested: {requested}, used: {in_use}, "
                                 f"limited: {limited}")
            new_used = dict(used_now) if known else {}
            for n in hard:
                total = used.get(n, quantity.value(new_used[n]) if n in new_used else recount.get(n, Decimal(0)))
                new_used[n] = quota.text(n, total + delta.get(n, Decimal(0)), hard[n])
            cur["status"] = {"hard": dict(hard), "used": new_used}
            return cur

        cur = await store.get(ns, qname)
        st = cur.get("status") or {}
        hard_now = (cur.get("spec") or {}).get("hard") or {}
        if st.get("hard") != hard_now or any(n not in (st.get("used") or {}) for n in hard_now):
            recount.update(await _used(server, ns, sorted(hard_now), cur))
        if dry_run:
            charge(cur)  # the check alone
            continue
        try:
            await store.update(ns, qname, charge, subresource="status")
        except errors.StatusError as e:
            if e.code != 404:
                raise
