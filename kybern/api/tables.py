"""Server-side table columns, so `kubectl get` prints what it prints against
upstream: the column sets and cell logic follow pkg/printers/internalversion/
printers.go (printPod, printDeployment, ...)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

from kybern.machinery import selectors

Obj = dict[str, Any]
Column = tuple[str, str, str, int]  # name, type, format, priority
Printer = tuple[list[Column], Callable[[Obj], list[Any]]]

_NAME: Column = ("Name", "string", "name", 0)
_AGE: Column = ("Age", "string", "", 0)


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = round(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m" if s % 60 == 0 else f"{m}m{s % 60}s"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h" if m % 60 == 0 else f"{h}h{m % 60}m"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d" if h % 24 == 0 else f"{h // 24}d{h % 24}h"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        dy = (h // 24) % 365
        return f"{h // 24 // 365}y" if dy == 0 else f"{h // 24 // 365}y{dy}d"
    return f"{h // 24 // 365}y"


def age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    try:
        t = _dt.datetime.fromisoformat(ts)
    except ValueError:
        return "<unknown>"
    return human_duration((_dt.datetime.now(_dt.UTC) - t).total_seconds())


def _created(o: Obj) -> str:
    return age(o.get("metadata", {}).get("creationTimestamp"))


def _name(o: Obj) -> str:
    return str(o.get("metadata", {}).get("name", ""))


def _containers(spec: Obj) -> tuple[str, str]:
    cs = spec.get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _selector(sel: Obj | None) -> str:
    if not sel:
        return "<none>"
    return selectors.to_string(sel) or "<none>"


# -- pods ---------------------------------------------------------------------
def _pod_summary(pod: Obj) -> tuple[int, int, str, int, str | None]:
    """printPod's READY, STATUS and RESTARTS (1.32): sidecars (init containers with
    `restartPolicy: Always`) count among the containers and their restarts; while the
    pod initialises, the init containers' restarts are shown."""
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    reason = status.get("reason") or status.get("phase") or ""
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    init_specs = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(sidecars)
    ready = restarts = sidecar_restarts = 0
    last_restart: str | None = None
    last_sidecar_restart: str | None = None
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        finished = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        if finished and (last_restart is None or finished > last_restart):
            last_restart = finished
        sidecar = cs.get("name") in sidecars
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            if finished and (last_sidecar_restart is None or finished > last_sidecar_restart):
                last_sidecar_restart = finished
        st = cs.get("state") or {}
        term, wait = st.get("terminated"), st.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term:
            if term.get("reason"):
                reason = "Init:" + term["reason"]
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode')}"
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    if not initializing or initialized:
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            finished = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
            if finished and (last_restart is None or finished > last_restart):
                last_restart = finished
            st = cs.get("state") or {}
            wait, term = st.get("waiting"), st.get("terminated")
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term and term.get("signal"):
                reason = f"Signal:{term['signal']}"
            elif term:
                reason = f"ExitCode:{term.get('exitCode')}"
            elif st.get("running") and cs.get("ready"):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or [])
            reason = "Running" if pod_ready else "NotReady"
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return ready, total, reason, restarts, last_restart


def pod_status_reason(pod: Obj) -> str:
    """The STATUS column of `kubectl get pods`."""
    return _pod_summary(pod)[2]


def _pod_row(pod: Obj) -> list[Any]:
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    ready, total, reason, restarts, last_restart = _pod_summary(pod)
    restarts_cell = f"{restarts} ({age(last_restart)} ago)" if restarts and last_restart else str(restarts)
    gates = spec.get("readinessGates") or []
    if gates:
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        gates_cell = f"{sum(1 for g in gates if conds.get(g.get('conditionType')) == 'True')}/{len(gates)}"
    else:
        gates_cell = "<none>"
    ips = status.get("podIPs") or []
    pod_ip = (ips[0].get("ip") if ips else "") or status.get("podIP") or "<none>"
    return [_name(pod), f"{ready}/{total}", reason, restarts_cell, _created(pod),
            pod_ip, spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", gates_cell]


_POD: Printer = ([_NAME, ("Ready", "string", "", 0), ("Status", "string", "", 0),
                  ("Restarts", "string", "", 0), _AGE, ("IP", "string", "", 1), ("Node", "string", "", 1),
                  ("Nominated Node", "string", "", 1), ("Readiness Gates", "string", "", 1)], _pod_row)


def _deploy_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [_name(o), f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", st.get("updatedReplicas", 0),
            st.get("availableReplicas", 0), _created(o), names, images, _selector(spec.get("selector"))]


_DEPLOY: Printer = ([_NAME, ("Ready", "string", "", 0), ("Up-to-date", "string", "", 0),
                     ("Available", "string", "", 0), _AGE, ("Containers", "string", "", 1),
                     ("Images", "string", "", 1), ("Selector", "string", "", 1)], _deploy_row)


def _rs_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [_name(o), spec.get("replicas", 0), st.get("replicas", 0), st.get("readyReplicas", 0),
            _created(o), names, images, _selector(spec.get("selector"))]


_RS: Printer = ([_NAME, ("Desired", "integer", "", 0), ("Current", "integer", "", 0),
                 ("Ready", "integer", "", 0), _AGE, ("Containers", "string", "", 1),
                 ("Images", "string", "", 1), ("Selector", "string", "", 1)], _rs_row)


def _node_row(o: Obj) -> list[Any]:
    st, spec = o.get("status") or {}, o.get("spec") or {}
    ready = "Unknown"
    for c in st.get("conditions") or []:
        if c.get("type") == "Ready":
            ready = "Ready" if c.get("status") == "True" else "NotReady"
    status = ready + (",SchedulingDisabled" if spec.get("unschedulable") else "")
    labels = (o.get("metadata") or {}).get("labels") or {}
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")} |
                   ({labels["kubernetes.io/role"]} if "kubernetes.io/role" in labels else set()))
    addrs = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    info = st.get("nodeInfo") or {}
    return [_name(o), status, ",".join(roles) or "<none>", _created(o), info.get("kubeletVersion", ""),
            addrs.get("InternalIP", "<none>"), addrs.get("ExternalIP", "<none>"), info.get("osImage", ""),
            info.get("kernelVersion", ""), info.get("containerRuntimeVersion", "")]


_NODE: Printer = ([_NAME, ("Status", "string", "", 0), ("Roles", "string", "", 0), _AGE,
                   ("Version", "string", "", 0), ("Internal-IP", "string", "", 1),
                   ("External-IP", "string", "", 1), ("OS-Image", "string", "", 1),
                   ("Kernel-Version", "string", "", 1), ("Container-Runtime", "string", "", 1)], _node_row)


def _svc_row(o: Obj) -> list[Any]:
    spec = o.get("spec") or {}
    typ = spec.get("type", "ClusterIP")
    ext = "<none>"
    if typ == "ExternalName":
        ext = spec.get("externalName", "<none>")
    elif typ == "LoadBalancer":
        ing = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ext = ",".join(i.get("ip") or i.get("hostname") or "" for i in ing) or "<pending>"
    elif spec.get("externalIPs"):
        ext = ",".join(spec["externalIPs"])
    ports = []
    for p in spec.get("ports") or []:
        s = f"{p.get('port')}"
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        ports.append(f"{s}/{p.get('protocol', 'TCP')}")
    sel = spec.get("selector")
    return [_name(o), typ, spec.get("clusterIP") or "<none>", ext, ",".join(ports) or "<none>",
            _created(o), ",".join(f"{k}={v}" for k, v in sorted(sel.items())) if sel else "<none>"]


_SVC: Printer = ([_NAME, ("Type", "string", "", 0), ("Cluster-IP", "string", "", 0),
                  ("External-IP", "string", "", 0), ("Port(s)", "string", "", 0), _AGE,
                  ("Selector", "string", "", 1)], _svc_row)


def _event_row(o: Obj) -> list[Any]:
    """printEvent: an event of the events.k8s.io API has eventTime and maybe a series
    where a core one has first/lastTimestamp and count."""
    inv = o.get("involvedObject") or {}
    first = age(o.get("firstTimestamp") or o.get("eventTime"))
    last = age(o["lastTimestamp"]) if o.get("lastTimestamp") else first
    count = o.get("count") or 0
    series = o.get("series")
    if isinstance(series, dict):
        last, count = age(series.get("lastObservedTime")), series.get("count") or 0
    elif not count:
        count = 1  # a singleton event of the new API has none
    kind = (inv.get("kind") or "").lower()
    obj = f"{kind}/{inv['name']}" if inv.get("name") else kind
    # formatEventSource: "component, host", each from the reporting fields when unset
    src = o.get("source") or {}
    component = src.get("component") or o.get("reportingComponent") or ""
    host = src.get("host") or o.get("reportingInstance") or ""
    return [last, o.get("type", ""), o.get("reason", ""), obj, inv.get("fieldPath", ""),
            f"{component}, {host}" if host else component, (o.get("message") or "").strip(), first, count,
            _name(o)]


_EVENT: Printer = ([("Last Seen", "string", "", 0), ("Type", "string", "", 0), ("Reason", "string", "", 0),
                    ("Object", "string", "", 0), ("Subobject", "string", "", 1), ("Source", "string", "", 1),
                    ("Message", "string", "", 0), ("First Seen", "string", "", 1),
                    ("Count", "string", "", 1), ("Name", "string", "", 1)], _event_row)

_NS: Printer = ([_NAME, ("Status", "string", "", 0), _AGE],
                lambda o: [_name(o), (o.get("status") or {}).get("phase", ""), _created(o)])
_CM: Printer = ([_NAME, ("Data", "integer", "", 0), _AGE],
                lambda o: [_name(o), len(o.get("data") or {}) + len(o.get("binaryData") or {}), _created(o)])
_SECRET: Printer = ([_NAME, ("Type", "string", "", 0), ("Data", "integer", "", 0), _AGE],
                    lambda o: [_name(o), o.get("type", ""), len(o.get("data") or {}), _created(o)])
_SA: Printer = ([_NAME, ("Secrets", "integer", "", 0), _AGE],
                lambda o: [_name(o), len(o.get("secrets") or []), _created(o)])
_LEASE: Printer = ([_NAME, ("Holder", "string", "", 0), _AGE],
                   lambda o: [_name(o), (o.get("spec") or {}).get("holderIdentity", ""), _created(o)])
DEFAULT: Printer = ([_NAME, _AGE], lambda o: [_name(o), _created(o)])

PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "Pod"): _POD, ("apps", "Deployment"): _DEPLOY, ("apps", "ReplicaSet"): _RS,
    ("", "Node"): _NODE, ("", "Service"): _SVC, ("", "Event"): _EVENT, ("", "Namespace"): _NS,
    ("", "ConfigMap"): _CM, ("", "Secret"): _SECRET, ("", "ServiceAccount"): _SA,
    ("coordination.k8s.io", "Lease"): _LEASE,
}

_DESCRIPTIONS = {"Name": "Name must be unique within a namespace. Is required when creating resources, "
                         "although some resources may allow a client to request the generation of an "
                         "appropriate name automatically. Name is primarily intended for creation idempotence "
                         "and configuration definition. Cannot be updated.",
                 "Age": "CreationTimestamp is a timestamp representing the server time when this object was "
                        "created."}


def printer_for(group: str, kind: str) -> Printer:
    return PRINTERS.get((group, kind), DEFAULT)


def column_definitions(printer: Printer) -> list[Obj]:
    return [{"name": n, "type": t, "format": f, "description": _DESCRIPTIONS.get(n, n), "priority": p}
            for n, t, f, p in printer[0]]


def table(printer: Printer, objs: list[Obj], *, include_object: str, list_meta: Obj | None,
          with_columns: bool = True) -> Obj:
    rows = []
    for o in objs:
        row: Obj = {"cells": printer[1](o)}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o.get("metadata", {})}
        rows.append(row)
    out: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {},
                "columnDefinitions": column_definitions(printer) if with_columns else [], "rows": rows}
    return out


# the kinds served beyond the skeleton keep their columns in printers.py, which adds
# them to PRINTERS (imported last: it uses the helpers above)
import kybern.api.printers  # noqa: F401
