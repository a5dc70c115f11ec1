"""The ingress controller (ingress-nginx for kybern): watches Ingresses,
IngressClasses, Services, EndpointSlices/Endpoints, Pods and Secrets, and keeps a
data plane — Debian's nginx, or the built-in proxy when nginx is absent —
serving what they describe.

It is a level-triggered reconciler with one key, as ingress-nginx's sync queue:
any change schedules a sync that rebuilds the whole routing table from the
informer caches (ingress_routes.build) and hands it to the data plane. Then, per
Ingress it owns, it records events (Normal `Sync` "Scheduled for sync" for each
new generation; Warning `BadConfig` for a missing Service or a missing or
malformed TLS Secret — a broken reference only ever affects its own routes) and
publishes the node's address in `status.loadBalancer.ingress`.

Which Ingresses are ours: `spec.ingressClassName` (or the legacy
`kubernetes.io/ingress.class` annotation) names an IngressClass whose
`spec.controller` is `kybern.io/ingress-nginx`; an Ingress with no class is ours
when such a class is marked default. The `kybern` class is created at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from pathlib import Path
from typing import Any, Protocol

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.leaderelection import LeaderElector
from kybern.client.resources import PODS, SECRETS, SERVICES, Resource
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.machinery import errors
from kybern.network import ingress_routes as routes
from kybern.network.ingress_certs import default_cert
from kybern.network.ingress_nginx import NginxPlane, PlaneError, find_nginx

log = logging.getLogger(__name__)

INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")
INGRESSCLASSES = Resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False)
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
ENDPOINTS = Resource("", "v1", "endpoints", "Endpoints")

CONTROLLER = "kybern.io/ingress-nginx"
CLASS_NAME = "kybern"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
SYNC = "sync"


class Plane(Protocol):
    async def apply(self, model: routes.Model) -> None: ...
    async def stop(self) -> None: ...


def default_ports() -> tuple[int, int]:
    """80/443 as root (as ingress-nginx on a node); 8080/8443 otherwise, which need no privilege."""
    import os

    return (80, 443) if os.geteuid() == 0 else (8080, 8443)


def make_plane(kind: str, prefix: Path, http_port: int, https_port: int, address: str = "") -> Plane:
    """`kind` is auto (nginx when installed, else built-in), nginx or builtin."""
    if kind == "nginx" or (kind == "auto" and find_nginx()):
        return NginxPlane(prefix, http_port=http_port, https_port=https_port, address=address)
    if kind not in ("auto", "builtin"):
        raise ValueError(f"unknown ingress data plane {kind!r}: use auto, nginx or builtin")
    from kybern.network.ingress_builtin import BuiltinPlane

    return BuiltinPlane(http_port=http_port, https_port=https_port, address=address)


def class_of(ing: dict[str, Any]) -> str | None:
    return (ing.get("spec") or {}).get("ingressClassName") or \
        (ing["metadata"].get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION)


def is_ours(ing: dict[str, Any], classes: list[dict[str, Any]]) -> bool:
    mine = [c for c in classes if (c.get("spec") or {}).get("controller") == CONTROLLER]
    name = class_of(ing)
    if name:
        return any(c["metadata"]["name"] == name for c in mine)
    return any((c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true" for c in mine)


class IngressController:
    def __init__(self, client: Client, *, data_dir: Path, http_port: int, https_port: int,
                 publish_address: str = "127.0.0.1", listen_address: str = "", plane: str = "auto",
                 informers: InformerFactory | None = None, elector: LeaderElector | None = None) -> None:
        """`informers`: a factory shared with other components of the process (its
        owner stops it); by default the controller has its own. `elector`: with
        several servers, every one serves traffic but only the holder of its Lease
        writes the Ingresses' status (as ingress-nginx's replicas), so they do not
        overwrite each other's address."""
        self.client = client
        self.elector = elector
        self.publishing = elector is None
        self.data_dir = data_dir
        self.http_port, self.https_port = http_port, https_port
        self.publish_address = publish_address
        self.plane = make_plane(plane, data_dir, http_port, https_port, listen_address)
        self.listen_address = listen_address
        self.recorder = EventRecorder(client, "nginx-ingress-controller")
        self.queue = WorkQueue("ingress", base_delay=0.5, max_delay=60)
        self._shared = informers is not None
        self.factory = informers if informers is not None else InformerFactory(client)
        self.ingresses = self.factory.informer(INGRESSES)
        self.classes = self.factory.informer(INGRESSCLASSES)
        self.services = self.factory.informer(SERVICES)
        self.slices = self.factory.informer(ENDPOINTSLICES)
        self.endpoints = self.factory.informer(ENDPOINTS)
        self.pods = self.factory.informer(PODS)
        self.secrets = self.factory.informer(SECRETS)
        self._informers = [self.ingresses, self.classes, self.services, self.slices, self.endpoints,
                           self.pods, self.secrets]
        self._synced_generation: dict[str, tuple[str, int]] = {}
        self._warned: dict[str, set[str]] = {}
        self.model: routes.Model | None = None
        self._plane_error = ""

    def _changed(self, typ: str, old: dict | None, new: dict) -> None:
        self.queue.add_after(SYNC, 0.05)  # batch bursts of changes

    def _pod_changed(self, typ: str, old: dict | None, new: dict) -> None:
        """Routes come from EndpointSlices (or Endpoints); pods only stand in for a
        backend Service that has neither yet. Other pod changes (every pod status
        write of the cluster) do not rebuild the routes."""
        if self.model is None or new["metadata"].get("namespace") in self.model.pod_namespaces:
            self._changed(typ, old, new)

    async def run(self) -> None:
        await self.ensure_class()
        with self.factory.recording() as mine:
            for inf in self._informers:
                inf.add_handler(self._pod_changed if inf is self.pods else self._changed)
        try:
            self.factory.start()
            await self.factory.wait_synced()
            self.queue.add(SYNC)
            leading = asyncio.create_task(self.elector.run(self._publish_while_leading)) if self.elector else None
            try:
                await run_workers(self.queue, self.reconcile, workers=1)
            finally:
                if leading is not None:
                    leading.cancel()  # releases the Lease
                    with contextlib.suppress(asyncio.CancelledError):
                        await leading
        finally:
            await self.factory.release(mine, shared=self._shared)
            await self.plane.stop()

    async def _publish_while_leading(self) -> None:
        self.publishing = True
        self.queue.add(SYNC)  # the status as this server sees it, at once
        try:
            await asyncio.Event().wait()
        finally:
            self.publishing = False

    async def ensure_class(self) -> None:
        """Create the `kybern` IngressClass, marked default, unless it exists (a user's edits stay)."""
        cls = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
               "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
                            "labels": {"app.kubernetes.io/component": "controller",
                                       "app.kubernetes.io/name": "ingress-nginx"}},
               "spec": {"controller": CONTROLLER}}
        try:
            await self.client.create(INGRESSCLASSES, cls)
        except errors.StatusError as e:
            if e.code != 409:
                raise

    def sources(self) -> routes.Sources:
        classes = self.classes.list()
        slices: dict[str, list[dict[str, Any]]] = {}
        for sl in self.slices.list():
            svc = (sl["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
            if svc:
                slices.setdefault(f"{sl['metadata']['namespace']}/{svc}", []).append(sl)
        return routes.Sources(
            ingresses=[i for i in self.ingresses.list() if is_ours(i, classes)],
            services=dict(self.services.cache), slices=slices, endpoints=dict(self.endpoints.cache),
            pods=self.pods.list(), secrets=dict(self.secrets.cache))

    async def reconcile(self, key: str) -> None:
        src = self.sources()
        model = routes.build(src, default_cert(self.data_dir / "default-cert"))
        try:
            await self._ports_free_or_ours()
            await self.plane.apply(model)
            self.model = model
            self._plane_error = ""
        except PlaneError as e:
            if str(e) != self._plane_error:  # log each distinct failure once; retries are quiet
                log.warning("ingress: %s", e)
                self._plane_error = str(e)
            raise
        for ing in src.ingresses:
            await self._report(ing, model)
        live = {key_of(i) for i in src.ingresses}
        for k in set(self._synced_generation) - live:
            self._synced_generation.pop(k, None)
            self._warned.pop(k, None)

    async def _ports_free_or_ours(self) -> None:
        """Fail fast (no nginx spawned) while another process holds the ports."""
        if self.model is not None:
            return  # our data plane already holds them
        for port in (self.http_port, self.https_port):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.listen_address or "0.0.0.0", port))
            except OSError as e:
                raise PlaneError(f"cannot listen on port {port}: {e.strerror} (choose other ports with "
                                 f"--ingress-http-port/--ingress-https-port, or --no-ingress)") from None
            finally:
                s.close()

    async def _report(self, ing: dict[str, Any], model: routes.Model) -> None:
        key = key_of(ing)
        m = ing["metadata"]
        seen = (m.get("uid", ""), int(m.get("generation") or 0))
        if self._synced_generation.get(key) != seen:
            self._synced_generation[key] = seen
            self._warned.pop(key, None)
            self.recorder.event(ing, "Normal", "Sync", "Scheduled for sync")
        problems = set(model.problems.get(key) or [])
        warned = self._warned.setdefault(key, set())
        for p in sorted(problems - warned):
            self.recorder.event(ing, "Warning", "BadConfig", p)
        self._warned[key] = problems
        want = [self._lb_ingress()]
        if self.publishing and ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") != want:
            try:
                await self.client.patch(INGRESSES, m["name"], {"status": {"loadBalancer": {"ingress": want}}},
                                        m["namespace"], subresource="status")
            except errors.StatusError as e:
                if e.code != 404:
                    raise

    def _lb_ingress(self) -> dict[str, str]:
        try:
            ipaddress.ip_address(self.publish_address)
            return {"ip": self.publish_address}
        except ValueError:
            return {"hostname": self.publish_address}
