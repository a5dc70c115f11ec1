"""What the Endpoints and EndpointSlice controllers agree on about a Service's
pods (upstream pkg/controller/util/endpoint and endpointslice/util): which
pods a Service selects, whether a pod belongs in its endpoints at all, how a
Service port maps onto a pod's port (named targetPorts), the hostname a pod
publishes, and the last-change-trigger-time annotation."""

from __future__ import annotations

from typing import Any

from kybern.controllers import podutil
from kybern.machinery import meta

TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
HEADLESS_LABEL = "service.kubernetes.io/headless"

Obj = dict[str, Any]


def service_selector(svc: Obj) -> dict[str, str] | None:
    """The Service's selector, or None when it has none. An empty selector is
    treated as none: upstream's storage drops an empty map, so such a Service
    arrives at its controller with `selector == nil` (user-managed endpoints)."""
    sel = (svc.get("spec") or {}).get("selector")
    return dict(sel) if sel else None


def is_managed(svc: Obj) -> bool:
    """Controllers manage endpoints only for selector Services that are not ExternalName."""
    spec = svc.get("spec") or {}
    return spec.get("type") != "ExternalName" and service_selector(svc) is not None


def selects(selector: dict[str, str], pod: Obj) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def services_of_pod(services: list[Obj], old: Obj | None, new: Obj) -> list[Obj]:
    """The Services whose selector picks the pod before or after a change (both
    endpoint controllers resync exactly those)."""
    out = []
    for svc in services:
        sel = service_selector(svc)
        if sel is not None and (selects(sel, new) or (old is not None and selects(sel, old))):
            out.append(svc)
    return out


def selected_pods(svc: Obj, pods: list[Obj]) -> list[Obj]:
    sel = service_selector(svc)
    if sel is None:
        return []
    return sorted((p for p in pods if selects(sel, p)), key=lambda p: p["metadata"]["name"])


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def should_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """ShouldPodBeInEndpoints: a pod with an IP that is neither finished nor
    (unless asked) terminating."""
    st = pod.get("status") or {}
    if st.get("phase") in ("Failed", "Succeeded"):
        return False
    if not st.get("podIP"):
        return False
    return include_terminating or not meta.is_deleting(pod)


def may_become_ready(pod: Obj) -> bool:
    """A not-ready pod is listed as notReady only if it can still become ready
    (upstream shouldPodBeInEndpoints in endpoints_controller.go)."""
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    phase = (pod.get("status") or {}).get("phase")
    if policy == "Never":
        return phase not in ("Failed", "Succeeded")
    if policy == "OnFailure":
        return phase != "Succeeded"
    return True


def pod_address(pod: Obj, family: str = "IPv4") -> str | None:
    """The pod's IP of the Service's family (status.podIPs, else podIP)."""
    st = pod.get("status") or {}
    ips = [i.get("ip") for i in st.get("podIPs") or [] if i.get("ip")] or \
        ([st["podIP"]] if st.get("podIP") else [])
    for ip in ips:
        if (":" in ip) == (family == "IPv6"):
            return ip
    return None


def service_family(svc: Obj) -> str:
    fams = (svc.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    return fams[0]


def hostname_for(pod: Obj, svc: Obj) -> str | None:
    """A pod publishes `spec.hostname` under a Service named like its `subdomain`
    (ShouldSetHostname): how StatefulSet pods get `<pod>.<svc>.<ns>.svc` names."""
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"] and \
            pod["metadata"].get("namespace") == svc["metadata"].get("namespace"):
        return str(spec["hostname"])
    return None


def target_ref(pod: Obj) -> Obj:
    m = pod["metadata"]
    return {"kind": "Pod", "namespace": m.get("namespace"), "name": m["name"], "uid": m.get("uid")}


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """podutil.FindPort: a numeric targetPort is used as is; a named one is looked
    up among the pod's container ports (and restartable init containers') with
    the same protocol. None when the pod has no such port."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if target is None:
        return None
    proto = svc_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for c in list(spec.get("containers") or []) + sidecars:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                return int(p["containerPort"])
    return None


def endpoint_ports(pod: Obj, svc: Obj) -> list[Obj]:
    """The Service's ports as this pod serves them ({name, port, protocol[, appProtocol]});
    ports the pod cannot resolve are left out, as upstream."""
    out = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        num = find_port(pod, sp)
        if num is None:
            continue
        p: Obj = {"name": sp.get("name") or "", "port": num, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            p["appProtocol"] = sp["appProtocol"]
        out.append(p)
    return out


def managed_labels(svc: Obj, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The Service's labels, plus the headless marker for headless Services (and
    without it otherwise, whatever the Service itself carries)."""
    labels = dict(svc["metadata"].get("labels") or {})
    labels.pop(HEADLESS_LABEL, None)
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    labels.update(extra or {})
    return labels


class TriggerTimeTracker:
    """When did the change that this sync publishes happen? (upstream
    TriggerTimeTracker): the earliest, among the pods whose readiness changed and
    the Service if they changed (resourceVersion) since the last sync, of the pod's
    Ready transition time or the Service's creation time. None when nothing changed."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, dict[str, str]]] = {}
        self._before: dict[str, tuple[str, dict[str, str]] | None] = {}  # for rollback()

    def compute(self, key: str, svc: Obj, pods: list[Obj]) -> str | None:
        self._before[key] = self._seen.get(key)
        prev_svc, prev_pods = self._seen.get(key, ("", {}))
        svc_state = svc["metadata"].get("resourceVersion") or ""
        times: list[str] = []
        if svc_state != prev_svc and svc["metadata"].get("creationTimestamp"):
            times.append(svc["metadata"]["creationTimestamp"])
        now_pods: dict[str, str] = {}
        for p in pods:
            rv = p["metadata"].get("resourceVersion") or ""
            now_pods[p["metadata"]["name"]] = rv
            t = (podutil.condition(p, "Ready") or {}).get("lastTransitionTime")
            if prev_pods.get(p["metadata"]["name"]) != rv and t:  # the pod changed: its time counts
                times.append(t)
        self._seen[key] = (svc_state, now_pods)
        return min(times, key=meta.parse_time) if times else None

    def rollback(self, key: str) -> None:
        """The sync that computed a trigger time did not publish it (a conflict, an
        error): its changes count again for the retry, which would otherwise find
        nothing changed and drop the annotation."""
        if key in self._before:
            before = self._before.pop(key)
            if before is None:
                self._seen.pop(key, None)
            else:
                self._seen[key] = before

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)
        self._before.pop(key, None)
