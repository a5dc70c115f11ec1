"""The EndpointSlice controller (upstream pkg/controller/endpointslice): for each
Service with a selector, discovery.k8s.io/v1 EndpointSlices holding its pods
(at most 100 endpoints a slice), one group of slices per distinct port set.

Each endpoint carries its address, conditions (ready / serving / terminating),
nodeName, zone (the node's topology.kubernetes.io/zone), targetRef and, for
pods whose subdomain names the Service, hostname. Slices are labelled
kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by, owned by
the Service (the garbage collector removes them with it), named `<svc>-<5>`.

Writes are kept few, as upstream's reconciler: an endpoint stays in the slice it
is in; changed slices are updated; new endpoints fill slices with room before a
slice is created; a slice about to be deleted is reused instead of creating one.
A Service with no endpoints keeps one empty "placeholder" slice.

Our own writes may not be in the informer cache yet when the next sync runs; as
upstream's endpointSliceTracker, we remember the generation each write produced
and wait (retry) until the cache has caught up, so a slice is never duplicated.
"""

from __future__ import annotations

import logging
from typing import Any

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import ENDPOINTSLICES, NODES, PODS, SERVICES
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.controllers import endpointutil as eu
from kybern.controllers import podutil
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100

Obj = dict[str, Any]
PortKey = tuple[tuple[Any, ...], ...]


class StaleCache(Exception):
    """The informer has not yet seen one of our writes; sync again shortly."""


def port_key(ports: list[Obj]) -> PortKey:
    return tuple(sorted((p.get("name") or "", p.get("port"), p.get("protocol") or "TCP",
                         p.get("appProtocol")) for p in ports))


def endpoint_key(ep: Obj) -> tuple[str, str]:
    return (((ep.get("targetRef") or {}).get("uid") or ""), ",".join(ep.get("addresses") or []))


def pod_endpoint(pod: Obj, svc: Obj, ip: str, zone: str | None) -> Obj:
    """podToEndpoint: ready is never true for a terminating pod unless the
    Service publishes not-ready addresses; serving is the pod's readiness."""
    serving = podutil.is_ready(pod)
    terminating = meta.is_deleting(pod)
    ready = bool((svc.get("spec") or {}).get("publishNotReadyAddresses")) or (serving and not terminating)
    ep: Obj = {"addresses": [ip],
               "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    host = eu.hostname_for(pod, svc)
    if host:
        ep["hostname"] = host
    ep["targetRef"] = eu.target_ref(pod)
    if (pod.get("spec") or {}).get("nodeName"):
        ep["nodeName"] = pod["spec"]["nodeName"]
    if zone:
        ep["zone"] = zone
    return ep


def desired_endpoints(svc: Obj, pods: list[Obj], zones: dict[str, str]) -> dict[PortKey, tuple[list[Obj], list[Obj]]]:
    """port set -> (ports, endpoints) for the Service's pods (terminating ones included)."""
    spec = svc.get("spec") or {}
    family = eu.service_family(svc)
    out: dict[PortKey, tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not eu.should_be_in_endpoints(pod, True):
            continue
        ip = eu.pod_address(pod, family)
        if ip is None:
            continue
        ports = eu.endpoint_ports(pod, svc)
        if spec.get("ports") and not ports:
            continue
        zone = zones.get((pod.get("spec") or {}).get("nodeName") or "")
        key = port_key(ports)
        out.setdefault(key, (sorted(ports, key=lambda p: (p["name"], p["port"])), []))[1].append(
            pod_endpoint(pod, svc, ip, zone))
    return out


class EndpointSliceController:
    name = "endpointslice"

    def __init__(self, client: Client, informers: InformerFactory, *, workers: int = 5,
                 max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> None:
        self.client = client
        self.workers = workers
        self.max_per_slice = max_per_slice
        self.services = informers.informer(SERVICES)
        self.pods = informers.informer(PODS)
        self.nodes = informers.informer(NODES)
        self.slices = informers.informer(ENDPOINTSLICES)
        self.queue = WorkQueue("endpointslice")
        self.recorder = EventRecorder(client, "endpoint-slice-controller")
        self.triggers = eu.TriggerTimeTracker()
        # service key -> slice name -> generation our last write produced (None: deleted)
        self._expect: dict[str, dict[str, int | None]] = {}
        self.services.add_handler(lambda t, o, n: self.queue.add(key_of(n)))
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        self.slices.add_handler(self._on_slice)

    async def run(self) -> None:
        await run_workers(self.queue, self.reconcile, self.workers)

    # -- events --------------------------------------------------------------
    def _on_pod(self, typ: str, old: Obj | None, new: Obj) -> None:
        for svc in eu.services_of_pod(self.services.list(new["metadata"].get("namespace")), old, new):
            self.queue.add(key_of(svc))

    def _on_node(self, typ: str, old: Obj | None, new: Obj) -> None:
        zone = lambda n: ((n or {}).get("metadata", {}).get("labels") or {}).get(ZONE_LABEL)
        if typ == "ADDED" and not zone(new) or old is not None and zone(old) == zone(new):
            return
        node = new["metadata"]["name"]
        for pod in self.pods.list():
            if (pod.get("spec") or {}).get("nodeName") == node:
                self._on_pod("MODIFIED", None, pod)

    def _on_slice(self, typ: str, old: Obj | None, new: Obj) -> None:
        labels = new["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME and labels.get(SERVICE_NAME_LABEL):
            self.queue.add(f"{new['metadata'].get('namespace')}/{labels[SERVICE_NAME_LABEL]}")

    # -- reconcile -----------------------------------------------------------
    def _zones(self) -> dict[str, str]:
        return {n["metadata"]["name"]: (n["metadata"].get("labels") or {})[ZONE_LABEL]
                for n in self.nodes.list() if (n["metadata"].get("labels") or {}).get(ZONE_LABEL)}

    def _owned_slices(self, ns: str, name: str) -> list[Obj]:
        out = []
        for s in self.slices.list(ns):
            labels = s["metadata"].get("labels") or {}
            if labels.get(SERVICE_NAME_LABEL) == name and labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME:
                out.append(s)
        return sorted(out, key=lambda s: s["metadata"]["name"])

    def _check_fresh(self, key: str, ns: str) -> None:
        expect = self._expect.get(key)
        if not expect:
            return
        for name, gen in list(expect.items()):
            cached = self.slices.get(f"{ns}/{name}")
            if gen is None:
                caught_up = cached is None
            else:
                caught_up = cached is not None and int(cached["metadata"].get("generation") or 0) >= gen
            if caught_up:
                del expect[name]
        if expect:
            self.queue.add_after(key, 0.2)
            raise StaleCache(f"slices of {key} not yet in cache: {sorted(expect)}")
        self._expect.pop(key, None)

    async def reconcile(self, key: str) -> None:
        ns, name = key.split("/", 1)
        svc = self.services.get(key)
        if svc is None:  # its slices go with it (ownerReference garbage collection)
            self.triggers.forget(key)
            self._expect.pop(key, None)
            return
        if not eu.is_managed(svc):
            return
        self._check_fresh(key, ns)
        pods = eu.selected_pods(svc, self.pods.list(ns))
        desired = desired_endpoints(svc, pods, self._zones())
        trigger = self.triggers.compute(key, svc, pods)
        try:
            await self._reconcile_slices(key, svc, desired, self._owned_slices(ns, name), trigger)
        except BaseException:
            self.triggers.rollback(key)  # not published: the retry reports the same change
            raise

    async def _reconcile_slices(self, key: str, svc: Obj, desired: dict[PortKey, tuple[list[Obj], list[Obj]]],
                                existing: list[Obj], trigger: str | None) -> None:
        uid = svc["metadata"].get("uid")
        family = eu.service_family(svc)
        labels = eu.managed_labels(svc, {SERVICE_NAME_LABEL: svc["metadata"]["name"],
                                         MANAGED_BY_LABEL: CONTROLLER_NAME})
        doomed: list[Obj] = []
        by_ports: dict[PortKey, list[Obj]] = {}
        for s in existing:
            owners = [r.get("uid") for r in s["metadata"].get("ownerReferences") or []]
            if uid not in owners or s.get("addressType") != family:
                doomed.append(s)  # a previous Service of that name, or another family
            else:
                by_ports.setdefault(port_key(s.get("ports") or []), []).append(s)
        # slice name (or "" + index for new ones) -> (base slice or None, ports, endpoints)
        plans: list[tuple[Obj | None, list[Obj], list[Obj]]] = []
        if not desired:
            desired = {(): ([], [])}  # the placeholder: one empty slice
        for pk, (ports, eps) in desired.items():
            remaining = {endpoint_key(e): e for e in eps}
            kept: list[tuple[Obj, list[Obj]]] = []
            for s in by_ports.pop(pk, []):
                new_eps = []
                for e in s.get("endpoints") or []:
                    want = remaining.pop(endpoint_key(e), None)
                    if want is not None:
                        new_eps.append(want)
                if new_eps or (not eps and not kept):
                    kept.append((s, new_eps))
                else:
                    doomed.append(s)
            # fill slices already changing first (they are written anyway), then the fullest
            kept.sort(key=lambda se: (se[1] == (se[0].get("endpoints") or []), -len(se[1])))
            for s, new_eps in kept:
                while remaining and len(new_eps) < self.max_per_slice:
                    new_eps.append(remaining.pop(next(iter(remaining))))
                plans.append((s, ports, new_eps))
            rest = list(remaining.values())
            for i in range(0, len(rest), self.max_per_slice):
                plans.append((None, ports, rest[i:i + self.max_per_slice]))
            if not eps and not kept:
                plans.append((None, ports, []))  # the placeholder
        for s in by_ports.values():
            doomed.extend(s)
        expect = self._expect.setdefault(key, {})
        for base, ports, eps in plans:
            if base is None and doomed:
                base = doomed.pop(0)  # reuse a slice we would delete: one write instead of two
            await self._write(svc, base, ports, eps, labels, family, trigger, expect)
        for s in doomed:
            try:
                await self.client.delete(ENDPOINTSLICES, s["metadata"]["name"], s["metadata"].get("namespace"))
            except errors.StatusError as e:
                if e.code != 404:
                    raise
            expect[s["metadata"]["name"]] = None
        if not expect:
            self._expect.pop(key, None)

    async def _write(self, svc: Obj, base: Obj | None, ports: list[Obj], eps: list[Obj],
                     labels: dict[str, str], family: str, trigger: str | None,
                     expect: dict[str, int | None]) -> None:
        m = svc["metadata"]
        owner = {"apiVersion": "v1", "kind": "Service", "name": m["name"], "uid": m.get("uid"),
                 "controller": True, "blockOwnerDeletion": True}
        if base is not None:
            bm = base["metadata"]
            if (base.get("endpoints") or []) == eps and port_key(base.get("ports") or []) == port_key(ports) \
                    and (bm.get("labels") or {}) == labels and owner in (bm.get("ownerReferences") or []):
                return  # unchanged
            body = {k: v for k, v in base.items() if k != "metadata"}
            md = {k: v for k, v in bm.items() if k != "managedFields"}
            md["labels"] = labels
            md["ownerReferences"] = [owner]
        else:
            body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice"}
            md = {"generateName": f"{m['name']}-", "namespace": m.get("namespace"), "labels": labels,
                  "ownerReferences": [owner]}
        ann = dict(md.get("annotations") or {})
        if trigger:
            ann[eu.TRIGGER_TIME_ANNOTATION] = trigger
        else:
            ann.pop(eu.TRIGGER_TIME_ANNOTATION, None)
        if ann:
            md["annotations"] = ann
        else:
            md.pop("annotations", None)
        body.update({"metadata": md, "addressType": family, "endpoints": eps, "ports": ports})
        try:
            if base is None:
                out = await self.client.create(ENDPOINTSLICES, body, m.get("namespace"))
            else:
                out = await self.client.update(ENDPOINTSLICES, body)
        except errors.StatusError as e:
            if base is None and e.code == 403 and "being terminated" in str(e):
                return
            if e.code != 409:
                self.recorder.event(svc, "Warning", "FailedToUpdateEndpointSlices",
                                    f"Error updating Endpoint Slices for Service {m.get('namespace')}/"
                                    f"{m['name']}: {e}")
            raise
        expect[out["metadata"]["name"]] = int(out["metadata"].get("generation") or 0)
