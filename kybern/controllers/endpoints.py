"""The Endpoints controller (upstream pkg/controller/endpoint): keeps one core/v1
Endpoints object per Service with a selector, named like the Service, listing
the selected pods' addresses — ready ones in `addresses`, the others in
`notReadyAddresses` — with the Service's ports resolved against each pod
(named targetPorts). Services without a selector, and ExternalName Services,
are left alone: their Endpoints are the user's."""

from __future__ import annotations

import logging
from typing import Any

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import ENDPOINTS, PODS, SERVICES
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.controllers import endpointutil as eu
from kybern.controllers import podutil
from kybern.machinery import errors

log = logging.getLogger(__name__)

MAX_CAPACITY = 1000  # upstream maxCapacity: more addresses are truncated
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"

Obj = dict[str, Any]


def desired_subsets(svc: Obj, pods: list[Obj]) -> list[Obj]:
    """The Endpoints subsets for `svc` given its selected pods, packed as
    RepackSubsets does: addresses serving the same ports share a subset."""
    spec = svc.get("spec") or {}
    tolerate = bool(spec.get("publishNotReadyAddresses"))
    family = eu.service_family(svc)
    groups: dict[tuple[Any, ...], Obj] = {}
    for pod in pods:
        if not eu.should_be_in_endpoints(pod, tolerate):
            continue
        ip = eu.pod_address(pod, family)
        if ip is None:
            continue
        addr: Obj = {"ip": ip}
        host = eu.hostname_for(pod, svc)
        if host:
            addr["hostname"] = host
        if (pod.get("spec") or {}).get("nodeName"):
            addr["nodeName"] = pod["spec"]["nodeName"]
        addr["targetRef"] = eu.target_ref(pod)
        if spec.get("ports"):
            ports = eu.endpoint_ports(pod, svc)
            if not ports:
                continue  # no port of the Service resolves on this pod
        elif eu.is_headless(svc):
            ports = []
        else:
            continue
        if tolerate or podutil.is_ready(pod):
            field = "addresses"
        elif eu.may_become_ready(pod):
            field = "notReadyAddresses"
        else:
            continue
        ports = sorted(ports, key=lambda p: (p["name"], p["port"], p["protocol"]))
        key = tuple((p["name"], p["port"], p["protocol"], p.get("appProtocol")) for p in ports)
        subset = groups.setdefault(key, {"ports": ports} if ports else {})
        subset.setdefault(field, []).append(addr)
    out = []
    for key in sorted(groups, key=repr):
        ss = groups[key]
        for field in ("addresses", "notReadyAddresses"):
            if field in ss:
                ss[field].sort(key=lambda a: (a["ip"], a["targetRef"].get("uid") or ""))
        if "ports" in ss:  # core/v1 EndpointPort.name is omitempty (an EndpointSlice's is not)
            ss["ports"] = [{k: v for k, v in p.items() if k != "name" or v} for p in ss["ports"]]
        out.append({k: ss[k] for k in ("addresses", "notReadyAddresses", "ports") if k in ss})
    return out


def truncate(subsets: list[Obj]) -> tuple[list[Obj], bool]:
    """At most MAX_CAPACITY addresses (ready ones kept first), as upstream."""
    total = sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or []) for s in subsets)
    if total <= MAX_CAPACITY:
        return subsets, False
    room = MAX_CAPACITY
    out = []
    for field in ("addresses", "notReadyAddresses"):
        for s in subsets:
            take = (s.get(field) or [])[:room]
            room -= len(take)
            if take:
                out.append({field: take, **({"ports": s["ports"]} if "ports" in s else {})})
    return out, True


class EndpointsController:
    name = "endpoint"

    def __init__(self, client: Client, informers: InformerFactory, *, workers: int = 5) -> None:
        self.client = client
        self.workers = workers
        self.services = informers.informer(SERVICES)
        self.pods = informers.informer(PODS)
        self.endpoints = informers.informer(ENDPOINTS)
        self.queue = WorkQueue("endpoint")
        self.recorder = EventRecorder(client, "endpoint-controller")
        self.triggers = eu.TriggerTimeTracker()
        self.services.add_handler(lambda t, o, n: self.queue.add(key_of(n)))
        self.pods.add_handler(self._on_pod)
        self.endpoints.add_handler(self._on_endpoints)

    async def run(self) -> None:
        await run_workers(self.queue, self.reconcile, self.workers)

    def _on_pod(self, typ: str, old: Obj | None, new: Obj) -> None:
        for svc in eu.services_of_pod(self.services.list(new["metadata"].get("namespace")), old, new):
            self.queue.add(key_of(svc))

    def _on_endpoints(self, typ: str, old: Obj | None, new: Obj) -> None:
        if typ == "DELETED" and self.services.get(key_of(new)) is not None:
            self.queue.add(key_of(new))  # someone deleted a managed Endpoints: recreate it

    async def reconcile(self, key: str) -> None:
        ns, name = key.split("/", 1)
        svc = self.services.get(key)
        if svc is None:
            self.triggers.forget(key)
            if self.endpoints.get(key) is not None:
                try:  # as upstream: the Endpoints go with their Service
                    await self.client.delete(ENDPOINTS, name, ns)
                except errors.StatusError as e:
                    if e.code != 404:
                        raise
            return
        if not eu.is_managed(svc):
            return
        pods = eu.selected_pods(svc, self.pods.list(ns))
        subsets, over = truncate(desired_subsets(svc, pods))
        trigger = self.triggers.compute(key, svc, pods)
        try:
            await self._publish(key, svc, subsets, over, trigger)
        except BaseException:
            self.triggers.rollback(key)  # not published: the retry reports the same change
            raise

    async def _publish(self, key: str, svc: Obj, subsets: list[Obj], over: bool, trigger: str | None) -> None:
        ns, name = key.split("/", 1)
        labels = eu.managed_labels(svc)
        current = self.endpoints.get(key)
        if current is not None:
            cur_ann = current["metadata"].get("annotations") or {}
            if (current.get("subsets") or []) == subsets and \
                    (current["metadata"].get("labels") or {}) == labels and \
                    (OVER_CAPACITY_ANNOTATION in cur_ann) == over:
                return
        ann = dict((current or {}).get("metadata", {}).get("annotations") or {})
        if trigger:
            ann[eu.TRIGGER_TIME_ANNOTATION] = trigger
        else:
            ann.pop(eu.TRIGGER_TIME_ANNOTATION, None)
        if over:
            ann[OVER_CAPACITY_ANNOTATION] = "truncated"
        else:
            ann.pop(OVER_CAPACITY_ANNOTATION, None)
        md: Obj = {"name": name, "namespace": ns, "labels": labels}
        if ann:
            md["annotations"] = ann
        body: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": md, "subsets": subsets}
        try:
            if current is None:
                await self.client.create(ENDPOINTS, body, ns)
            else:
                md["resourceVersion"] = current["metadata"].get("resourceVersion")
                await self.client.update(ENDPOINTS, body)
        except errors.StatusError as e:
            if current is None and e.code == 403 and "being terminated" in str(e):
                return  # the namespace is going away
            if e.code == 409 and current is None:
                raise  # created meanwhile: retry against the informer's copy
            verb = "create" if current is None else "update"
            self.recorder.event(svc, "Warning", f"FailedTo{verb.capitalize()}Endpoint",
                                f"Failed to {verb} endpoint {ns}/{name}: {e}")
            raise
