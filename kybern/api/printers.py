"""`kubectl get` columns of the kinds served beyond the skeleton (workloads,
batch, autoscaling, networking, storage, policy, RBAC, CRDs), after
pkg/printers/internalversion/printers.go; tables.py merges them into PRINTERS.
Kinds upstream prints with its default convertor (Role, ClusterRole,
LimitRange, CRD) show NAME and CREATED AT."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from kybern.api import events, tables
from kybern.api.tables import Printer, _containers, _created, _name, _selector, age, human_duration
from kybern.machinery import selectors

Obj = dict[str, Any]
_N = ("Name", "string", "name", 0)
_A = ("Age", "string", "", 0)
_WIDE_POD = [("Containers", "string", "", 1), ("Images", "string", "", 1)]
_SEL = ("Selector", "string", "", 1)


def _s(o: Obj) -> tuple[Obj, Obj]:
    return o.get("spec") or {}, o.get("status") or {}


def _tmpl(spec: Obj) -> tuple[str, str]:
    return _containers((spec.get("template") or {}).get("spec") or {})


def _more(items: list[str], n: int = 3) -> str:
    if not items:
        return ""
    out = ",".join(items[:n])
    return out + (f" + {len(items) - n} more..." if len(items) > n else "")


def _bool(v: Any) -> str:
    return "<unset>" if v is None else ("true" if v else "false")


def _time(ts: str | None) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromisoformat(ts.replace("Z", "+00:00")) if ts else None
    except ValueError:
        return None


# -- workloads -----------------------------------------------------------------
def _sts(o: Obj) -> list[Any]:
    spec, st = _s(o)
    return [_name(o), f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", _created(o), *_tmpl(spec)]


def _ds(o: Obj) -> list[Any]:
    spec, st = _s(o)
    ns = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return [_name(o), st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            ",".join(f"{k}={v}" for k, v in sorted(ns.items())) or "<none>", _created(o), *_tmpl(spec),
            _selector(spec.get("selector"))]


def _cr(o: Obj) -> list[Any]:
    ctrl = next((r for r in (o.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")), None)
    owner = f"{ctrl.get('kind', '').lower()}.{ctrl.get('apiVersion', '').split('/')[0]}/{ctrl.get('name')}" \
        if ctrl and "/" in ctrl.get("apiVersion", "") else \
        (f"{ctrl.get('kind', '').lower()}/{ctrl.get('name')}" if ctrl else "<none>")
    return [_name(o), owner, o.get("revision", 0), _created(o)]


def _rc(o: Obj) -> list[Any]:
    spec, st = _s(o)
    sel = spec.get("selector") or {}
    return [_name(o), spec.get("replicas", 0), st.get("replicas", 0), st.get("readyReplicas", 0), _created(o),
            *_tmpl(spec), ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>"]


def _podtemplate(o: Obj) -> list[Any]:
    tmpl = o.get("template") or {}
    names, images = _containers(tmpl.get("spec") or {})
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    return [_name(o), names, images, ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"]


# -- batch -------------------------------------------------------------------------
def _job_status(o: Obj) -> str:
    conds = {c.get("type") for c in (o.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
    if "Complete" in conds:
        return "Complete"
    if "Failed" in conds:
        return "Failed"
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for c in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if c in conds:
            return c
    return "Running"


def _job(o: Obj) -> list[Any]:
    spec, st = _s(o)
    succeeded = st.get("succeeded", 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    else:
        par = spec.get("parallelism") or 0
        completions = f"{succeeded}/1 of {par}" if par > 1 else f"{succeeded}/1"
    start, done = _time(st.get("startTime")), _time(st.get("completionTime"))
    if start is None:
        duration = ""
    elif done is None:
        duration = human_duration((_dt.datetime.now(_dt.timezone.utc) - start).total_seconds())
    else:
        duration = human_duration((done - start).total_seconds())
    return [_name(o), _job_status(o), completions, duration, _created(o), *_tmpl(spec),
            _selector(spec.get("selector"))]


def _cronjob(o: Obj) -> list[Any]:
    spec, st = _s(o)
    last = st.get("lastScheduleTime")
    jspec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return [_name(o), spec.get("schedule", ""), spec.get("timeZone") or "<none>", _bool(spec.get("suspend")).title()
            if spec.get("suspend") is not None else "<unset>", len(st.get("active") or []),
            age(last) if last else "<none>", _created(o), *_tmpl(jspec), _selector(jspec.get("selector"))]


# -- autoscaling -----------------------------------------------------------------
def _hpa_targets(spec: Obj, st: Obj) -> str:
    metrics = spec.get("metrics") or []
    if not metrics:
        return "<none>"
    current = st.get("currentMetrics") or []
    out = []
    for i, m in enumerate(metrics):
        cur = current[i] if i < len(current) else {}
        t = m.get("type")
        src = m.get(t[:1].lower() + t[1:] if t else "", {}) or {}
        csrc = cur.get(t[:1].lower() + t[1:] if t else "", {}) or {}
        target, now = src.get("target") or {}, csrc.get("current") or {}
        if t in ("Resource", "ContainerResource"):
            name = src.get("name", "")
            if target.get("averageValue") is not None:
                out.append(f"{name}: {now.get('averageValue', '<unknown>')}/{target['averageValue']}")
            else:
                c = f"{now['averageUtilization']}%" if now.get("averageUtilization") is not None else "<unknown>"
                tgt = f"{target['averageUtilization']}%" if target.get("averageUtilization") is not None \
                    else "<auto>"
                out.append(f"{name}: {c}/{tgt}")
        else:
            want = target.get("averageValue") or target.get("value") or "<auto>"
            have = now.get("averageValue") or now.get("value") or "<unknown>"
            avg = " (avg)" if target.get("averageValue") else ""
            out.append(f"{have}/{want}{avg}")
    if len(out) > 3:
        return ", ".join(out[:3]) + f" + {len(out) - 3} more..."
    return ", ".join(out)


def _hpa(o: Obj) -> list[Any]:
    spec, st = _s(o)
    ref = spec.get("scaleTargetRef") or {}
    lo = spec.get("minReplicas")
    return [_name(o), f"{ref.get('kind', '')}/{ref.get('name', '')}", _hpa_targets(spec, st),
            "<unset>" if lo is None else str(lo), str(spec.get("maxReplicas", 0)),
            str(st.get("currentReplicas", 0)), _created(o)]


# -- networking and discovery --------------------------------------------------------
def _ingress(o: Obj) -> list[Any]:
    spec, st = _s(o)
    hosts = [r.get("host") or "*" for r in spec.get("rules") or []]
    lbs = [i.get("ip") or i.get("hostname") or "" for i in (st.get("loadBalancer") or {}).get("ingress") or []]
    return [_name(o), spec.get("ingressClassName") or "<none>", _more(hosts) or "*", ",".join(lbs),
            "80, 443" if spec.get("tls") else "80", _created(o)]


def _ingressclass(o: Obj) -> list[Any]:
    spec = o.get("spec") or {}
    p = spec.get("parameters")
    params = "<none>"
    if p:
        params = f"{p.get('kind')}.{p.get('apiGroup')}/{p.get('name')}" if p.get("apiGroup") else \
            f"{p.get('kind')}/{p.get('name')}"
    return [_name(o), spec.get("controller", ""), params, _created(o)]


def _netpol(o: Obj) -> list[Any]:
    sel = (o.get("spec") or {}).get("podSelector")
    return [_name(o), _selector(sel) if sel else "<none>", _created(o)]


def _endpoints(o: Obj) -> list[Any]:
    out: list[str] = []
    total = 0
    for ss in o.get("subsets") or []:
        addrs = [a.get("ip", "") for a in ss.get("addresses") or []]
        ports = ss.get("ports") or [None]
        for p in ports:
            for a in addrs:
                total += 1
                if len(out) < 3:
                    out.append(a if p is None else f"{a}:{p.get('port')}")
    if not out:
        return [_name(o), "<none>", _created(o)]
    return [_name(o), ",".join(out) + (f" + {total - 3} more..." if total > 3 else ""), _created(o)]


def _slice(o: Obj) -> list[Any]:
    ports = [str(p.get("port")) for p in o.get("ports") or [] if p.get("port") is not None]
    addrs = [a for ep in o.get("endpoints") or [] for a in ep.get("addresses") or []]
    return [_name(o), o.get("addressType", ""), ",".join(ports) or "<unset>", _more(addrs) or "<unset>",
            _created(o)]


# -- storage ------------------------------------------------------------------------------
_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def _modes(modes: list[str] | None) -> str:
    return ",".join(_MODES.get(m, m) for m in modes or [])


def _pv(o: Obj) -> list[Any]:
    spec, st = _s(o)
    claim = spec.get("claimRef") or {}
    phase = "Terminating" if (o.get("metadata") or {}).get("deletionTimestamp") else st.get("phase", "")
    return [_name(o), str((spec.get("capacity") or {}).get("storage", "")), _modes(spec.get("accessModes")),
            spec.get("persistentVolumeReclaimPolicy", ""), phase,
            f"{claim.get('namespace')}/{claim.get('name')}" if claim else "", spec.get("storageClassName", ""),
            spec.get("volumeAttributesClassName") or "<unset>", st.get("reason", ""), _created(o),
            spec.get("volumeMode") or "<unset>"]


def _pvc(o: Obj) -> list[Any]:
    spec, st = _s(o)
    phase = "Terminating" if (o.get("metadata") or {}).get("deletionTimestamp") else st.get("phase", "")
    bound = bool(spec.get("volumeName"))
    sc = spec.get("storageClassName") or ((o.get("metadata") or {}).get("annotations") or {}).get(
        "volume.beta.kubernetes.io/storage-class", "")
    return [_name(o), phase, spec.get("volumeName", ""),
            str((st.get("capacity") or {}).get("storage", "")) if bound else "",
            _modes(st.get("accessModes")) if bound else "", sc,
            spec.get("volumeAttributesClassName") or "<unset>", _created(o), spec.get("volumeMode") or "<unset>"]


def _quota(o: Obj) -> list[Any]:
    st = o.get("status") or {}
    hard, used = st.get("hard") or {}, st.get("used") or {}
    req, lim = [], []
    for r in sorted(hard):
        pair = f"{r}: {used.get(r, '0')}/{hard[r]}"
        (lim if r.startswith("limits") else req).append(pair)
    return [_name(o), _created(o), ", ".join(req), ", ".join(lim)]


def _sc(o: Obj) -> list[Any]:
    default = ((o.get("metadata") or {}).get("annotations") or {}).get(
        "storageclass.kubernetes.io/is-default-class") == "true"
    return [_name(o) + (" (default)" if default else ""), o.get("provisioner", ""),
            o.get("reclaimPolicy") or "Delete", o.get("volumeBindingMode") or "Immediate",
            "true" if o.get("allowVolumeExpansion") else "false", _created(o)]


def _csidriver(o: Obj) -> list[Any]:
    spec = o.get("spec") or {}
    tokens = ",".join(t.get("audience", "") for t in spec.get("tokenRequests") or []) or "<unset>"
    return [_name(o), bool(spec.get("attachRequired", True)), bool(spec.get("podInfoOnMount")),
            bool(spec.get("storageCapacity")), tokens, bool(spec.get("requiresRepublish")),
            ",".join(spec.get("volumeLifecycleModes") or []), _created(o)]


def _va(o: Obj) -> list[Any]:
    spec, st = _s(o)
    return [_name(o), spec.get("attacher", ""), (spec.get("source") or {}).get("persistentVolumeName", ""),
            spec.get("nodeName", ""), bool(st.get("attached")), _created(o)]


# -- policy and rbac -------------------------------------------------------------------------
def _pdb(o: Obj) -> list[Any]:
    spec, st = _s(o)
    lo, hi = spec.get("minAvailable"), spec.get("maxUnavailable")
    return [_name(o), "N/A" if lo is None else str(lo), "N/A" if hi is None else str(hi),
            st.get("disruptionsAllowed", 0), _created(o)]


def _binding(o: Obj) -> list[Any]:
    ref = o.get("roleRef") or {}
    subj = o.get("subjects") or []
    users = ", ".join(s.get("name", "") for s in subj if s.get("kind") == "User")
    groups = ", ".join(s.get("name", "") for s in subj if s.get("kind") == "Group")
    sas = ", ".join(f"{s.get('namespace', '')}:{s.get('name', '')}" for s in subj if s.get("kind") == "ServiceAccount")
    return [_name(o), f"{ref.get('kind', '')}/{ref.get('name', '')}", _created(o), users, groups, sas]


_CREATED_AT: Printer = ([_N, ("Created At", "date", "", 0)],
                        lambda o: [_name(o), (o.get("metadata") or {}).get("creationTimestamp")])
_BINDING: Printer = ([_N, ("Role", "string", "", 0), _A, ("Users", "string", "", 1), ("Groups", "string", "", 1),
                      ("ServiceAccounts", "string", "", 1)], _binding)

def _apiservice(o: Obj) -> list[Any]:
    spec, st = _s(o)
    svc = spec.get("service")
    service = f"{svc.get('namespace')}/{svc.get('name')}" if isinstance(svc, dict) else "Local"
    available = "Unknown"
    for c in st.get("conditions") or []:
        if c.get("type") == "Available":
            status = c.get("status") or ""
            available = status if status == "True" or not c.get("reason") else f"{status} ({c['reason']})"
    return [_name(o), service, available, _created(o)]


def _flowschema(o: Obj) -> list[Any]:
    spec = o.get("spec") or {}
    missing = next((c.get("status") or "" for c in (o.get("status") or {}).get("conditions") or []
                    if c.get("type") == "Dangling"), "?")
    return [_name(o), (spec.get("priorityLevelConfiguration") or {}).get("name") or "",
            spec.get("matchingPrecedence") or 0, (spec.get("distinguisherMethod") or {}).get("type") or "<none>",
            _created(o), missing]


def _prioritylevel(o: Obj) -> list[Any]:
    spec = o.get("spec") or {}
    shares = queues = hand = qlen = "<none>"
    lim = spec.get("limited")
    if lim is not None:
        shares = lim.get("nominalConcurrencyShares") or 0
        q = (lim.get("limitResponse") or {}).get("queuing")
        if q is not None:
            queues, hand, qlen = q.get("queues") or 0, q.get("handSize") or 0, q.get("queueLengthLimit") or 0
    return [_name(o), spec.get("type") or "", shares, queues, hand, qlen, _created(o)]


def _priorityclass(o: Obj) -> list[Any]:
    return [_name(o), int(o.get("value") or 0), bool(o.get("globalDefault")), _created(o),
            o.get("preemptionPolicy") or ""]


_WEBHOOKS: Printer = ([_N, ("Webhooks", "integer", "", 0), _A],
                      lambda o: [_name(o), len(o.get("webhooks") or []), _created(o)])


def _vap(o: Obj) -> list[Any]:
    pk = _s(o)[0].get("paramKind")
    kind = f"{pk.get('apiVersion', '')}/{pk.get('kind', '')}" if isinstance(pk, dict) else "<unset>"
    return [_name(o), len(_s(o)[0].get("validations") or []), kind, _created(o)]


def _vapb(o: Obj) -> list[Any]:
    spec = _s(o)[0]
    pr, param = spec.get("paramRef"), "<unset>"
    if isinstance(pr, dict):
        if pr.get("name"):
            param = f"{pr.get('namespace') or '*'}/{pr['name']}"
        elif isinstance(pr.get("selector"), dict):
            param = selectors.to_string(pr["selector"])
    return [_name(o), spec.get("policyName", ""), param, _created(o)]


def _componentstatus(o: Obj) -> list[Any]:
    """upstream's printComponentStatus: the Healthy condition's status, message and error."""
    for c in o.get("conditions") or []:
        if c.get("type") == "Healthy":
            return [_name(o), "Healthy" if c.get("status") == "True" else "Unhealthy", c.get("message", ""),
                    c.get("error", "")]
    return [_name(o), "Unknown", "", ""]


PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "ComponentStatus"): ([_N, ("Status", "string", "", 0), ("Message", "string", "", 0),
                               ("Error", "string", "", 0)], _componentstatus),
    ("apps", "StatefulSet"): ([_N, ("Ready", "string", "", 0), _A, *_WIDE_POD], _sts),
    ("apps", "DaemonSet"): ([_N, ("Desired", "integer", "", 0), ("Current", "integer", "", 0),
                             ("Ready", "integer", "", 0), ("Up-to-date", "integer", "", 0),
                             ("Available", "integer", "", 0), ("Node Selector", "string", "", 0), _A, *_WIDE_POD,
                             _SEL], _ds),
    ("apps", "ControllerRevision"): ([_N, ("Controller", "string", "", 0), ("Revision", "string", "", 0), _A],
                                     _cr),
    ("", "ReplicationController"): ([_N, ("Desired", "integer", "", 0), ("Current", "integer", "", 0),
                                     ("Ready", "integer", "", 0), _A, *_WIDE_POD, _SEL], _rc),
    ("", "PodTemplate"): ([("Template", "string", "name", 0), ("Containers", "string", "", 0),
                           ("Images", "string", "", 0), ("Pod Labels", "string", "", 0)], _podtemplate),
    ("batch", "Job"): ([_N, ("Status", "string", "", 0), ("Completions", "string", "", 0),
                        ("Duration", "string", "", 0), _A, *_WIDE_POD, _SEL], _job),
    ("batch", "CronJob"): ([_N, ("Schedule", "string", "", 0), ("Timezone", "string", "", 0),
                            ("Suspend", "boolean", "", 0), ("Active", "integer", "", 0),
                            ("Last Schedule", "string", "", 0), _A, *_WIDE_POD, _SEL], _cronjob),
    # the /scale subresource (`kubectl get deploy x --subresource=scale`), upstream's printScale
    ("autoscaling", "Scale"): ([_N, ("Desired", "integer", "", 0), ("Available", "integer", "", 0), _A],
                               lambda o: [_name(o), (o.get("spec") or {}).get("replicas", 0),
                                          (o.get("status") or {}).get("replicas", 0), _created(o)]),
    ("autoscaling", "HorizontalPodAutoscaler"): ([_N, ("Reference", "string", "", 0), ("Targets", "string", "", 0),
                                                  ("MinPods", "string", "", 0), ("MaxPods", "string", "", 0),
                                                  ("Replicas", "string", "", 0), _A], _hpa),
    ("networking.k8s.io", "Ingress"): ([_N, ("Class", "string", "", 0), ("Hosts", "string", "", 0),
                                        ("Address", "string", "", 0), ("Ports", "string", "", 0), _A], _ingress),
    ("networking.k8s.io", "IngressClass"): ([_N, ("Controller", "string", "", 0), ("Parameters", "string", "", 0),
                                             _A], _ingressclass),
    ("networking.k8s.io", "NetworkPolicy"): ([_N, ("Pod-Selector", "string", "", 0), _A], _netpol),
    ("", "Endpoints"): ([_N, ("Endpoints", "string", "", 0), _A], _endpoints),
    ("discovery.k8s.io", "EndpointSlice"): ([_N, ("AddressType", "string", "", 0), ("Ports", "string", "", 0),
                                             ("Endpoints", "string", "", 0), _A], _slice),
    ("", "PersistentVolume"): ([_N, ("Capacity", "string", "", 0), ("Access Modes", "string", "", 0),
                                ("Reclaim Policy", "string", "", 0), ("Status", "string", "", 0),
                                ("Claim", "string", "", 0), ("StorageClass", "string", "", 0),
                                ("VolumeAttributesClass", "string", "", 0), ("Reason", "string", "", 0), _A,
                                ("VolumeMode", "string", "", 1)], _pv),
    ("", "PersistentVolumeClaim"): ([_N, ("Status", "string", "", 0), ("Volume", "string", "", 0),
                                     ("Capacity", "string", "", 0), ("Access Modes", "string", "", 0),
                                     ("StorageClass", "string", "", 0), ("VolumeAttributesClass", "string", "", 0),
                                     _A, ("VolumeMode", "string", "", 1)], _pvc),
    ("", "ResourceQuota"): ([_N, _A, ("Request", "string", "", 0), ("Limit", "string", "", 0)], _quota),
    ("", "LimitRange"): _CREATED_AT,
    ("storage.k8s.io", "StorageClass"): ([_N, ("Provisioner", "string", "", 0), ("ReclaimPolicy", "string", "", 0),
                                          ("VolumeBindingMode", "string", "", 0),
                                          ("AllowVolumeExpansion", "string", "", 0), _A], _sc),
    ("storage.k8s.io", "CSIDriver"): ([_N, ("AttachRequired", "boolean", "", 0), ("PodInfoOnMount", "boolean", "", 0),
                                       ("StorageCapacity", "boolean", "", 0), ("TokenRequests", "string", "", 0),
                                       ("RequiresRepublish", "boolean", "", 0), ("Modes", "string", "", 0), _A],
                                      _csidriver),
    ("storage.k8s.io", "CSINode"): ([_N, ("Drivers", "integer", "", 0), _A],
                                    lambda o: [_name(o), len((o.get("spec") or {}).get("drivers") or []),
                                               _created(o)]),
    ("storage.k8s.io", "CSIStorageCapacity"): (  # no Age column upstream
        [_N, ("StorageClassName", "string", "", 0), ("Capacity", "string", "", 0)],
        lambda o: [_name(o), o.get("storageClassName") or "", str(o["capacity"]) if o.get("capacity") else "<unset>"]),
    ("storage.k8s.io", "VolumeAttachment"): ([_N, ("Attacher", "string", "name", 0), ("PV", "string", "", 0),
                                              ("Node", "string", "", 0), ("Attached", "boolean", "", 0), _A], _va),
    ("policy", "PodDisruptionBudget"): ([_N, ("Min Available", "string", "", 0), ("Max Unavailable", "string", "", 0),
                                         ("Allowed Disruptions", "integer", "", 0), _A], _pdb),
    ("events.k8s.io", "Event"): (tables._EVENT[0], lambda o: tables._event_row(events.to_core(o))),
    ("apiregistration.k8s.io", "APIService"): ([_N, ("Service", "string", "", 0), ("Available", "string", "", 0),
                                                 _A], _apiservice),
    ("scheduling.k8s.io", "PriorityClass"): ([_N, ("Value", "integer", "", 0), ("Global-Default", "boolean", "", 0),
                                              _A, ("PreemptionPolicy", "string", "", 0)], _priorityclass),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"): (
        [_N, ("PriorityLevel", "string", "", 0), ("MatchingPrecedence", "string", "", 0),
         ("DistinguisherMethod", "string", "", 0), _A, ("MissingPL", "string", "", 0)], _flowschema),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"): (
        [_N, ("Type", "string", "", 0), ("NominalConcurrencyShares", "string", "", 0), ("Queues", "string", "", 0),
         ("HandSize", "string", "", 0), ("QueueLengthLimit", "string", "", 0), _A], _prioritylevel),
    ("node.k8s.io", "RuntimeClass"): ([_N, ("Handler", "string", "", 0), _A],
                                      lambda o: [_name(o), o.get("handler") or "", _created(o)]),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): _WEBHOOKS,
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): _WEBHOOKS,
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): (
        [_N, ("Validations", "integer", "", 0), ("ParamKind", "string", "", 0), _A], _vap),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): (
        [_N, ("PolicyName", "string", "", 0), ("ParamRef", "string", "", 0), _A], _vapb),
    ("rbac.authorization.k8s.io", "Role"): _CREATED_AT,
    ("rbac.authorization.k8s.io", "ClusterRole"): _CREATED_AT,
    ("rbac.authorization.k8s.io", "RoleBinding"): _BINDING,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _BINDING,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _CREATED_AT,
}

tables.PRINTERS.update(PRINTERS)
