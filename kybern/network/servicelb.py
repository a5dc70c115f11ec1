"""LoadBalancer Services without a cloud (like k3s's ServiceLB / klipper-lb):
each Service of `type: LoadBalancer` gets an address reachable from the
machine in `status.loadBalancer.ingress`, and the service proxy on every node
forwards that address to the Service's endpoints.

Addresses come from a pool on loopback, 127.240.0.0/24 by default
(`KYBERN_LB_POOL`): Linux answers for all of 127.0.0.0/8 on `lo`, so nothing
has to be added to an interface and no root is needed. Each Service gets its
own address, so two LoadBalancers may both use port 80. `spec.loadBalancerIP`
is honoured when it is a free address of the pool. Services with a
`spec.loadBalancerClass` belong to another implementation and are left alone.

It runs once per cluster (beside the controllers), is an API client, and is
level-triggered: any Service change leads to one pass over all of them. It
records upstream's service-controller events `EnsuringLoadBalancer` and
`EnsuredLoadBalancer`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from typing import Any

from kybern.client.dirtyloop import sync_when_dirty
from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import SERVICES
from kybern.machinery import errors

log = logging.getLogger(__name__)

POOL = os.environ.get("KYBERN_LB_POOL", "127.240.0.0/24")


def _ingress_ips(svc: dict[str, Any]) -> list[str]:
    return [i.get("ip", "") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def ours(svc: dict[str, Any]) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def assign(services: list[dict[str, Any]], pool: str = POOL) -> dict[str, str | None]:
    """The address each Service ("ns/name") should have: an IP for our
    LoadBalancers, None for Services that hold a pool address they should not."""
    net = ipaddress.ip_network(pool)
    in_pool = {str(h) for h in net.hosts()}
    taken: dict[str, str] = {}  # ip -> service
    want: dict[str, str | None] = {}
    pending = []
    for svc in sorted(services, key=lambda s: s["metadata"].get("creationTimestamp") or ""):
        key = f"{svc['metadata'].get('namespace')}/{svc['metadata']['name']}"
        have = [ip for ip in _ingress_ips(svc) if ip in in_pool]
        if not ours(svc):
            if have:
                want[key] = None
            continue
        if have and have[0] not in taken:
            taken[have[0]] = key
            want[key] = have[0]
        else:
            pending.append((key, svc))
    for key, svc in pending:
        asked = (svc.get("spec") or {}).get("loadBalancerIP")
        ip = asked if asked in in_pool and asked not in taken else next(
            (h for h in sorted(in_pool, key=lambda a: ipaddress.ip_address(a)) if h not in taken), None)
        if ip is None:
            log.warning("servicelb: pool %s is exhausted; %s gets no address", pool, key)
            continue
        taken[ip] = key
        want[key] = ip
    return want


class ServiceLB:
    def __init__(self, client: Client, pool: str = POOL, *, informers: InformerFactory | None = None) -> None:
        """`informers`: a factory shared with other components of the process (its
        owner stops it); by default the controller has its own."""
        self.client = client
        self.pool = pool
        self._shared = informers is not None
        self.factory = informers if informers is not None else InformerFactory(client)
        self.informer = self.factory.informer(SERVICES)
        self.recorder = EventRecorder(client, "service-controller")
        self._dirty = asyncio.Event()

    def _changed(self, *_: Any) -> None:
        self._dirty.set()

    async def run(self) -> None:
        with self.factory.recording() as mine:
            self.informer.add_handler(self._changed)
        try:
            self.factory.start()
            await self.informer.wait_synced()
            self._dirty.set()
            await sync_when_dirty(self._dirty, self.reconcile, "servicelb reconcile")
        finally:
            await self.factory.release(mine, shared=self._shared)

    async def reconcile(self) -> None:
        services = self.informer.list()
        by_key = {f"{s['metadata'].get('namespace')}/{s['metadata']['name']}": s for s in services}
        for key, ip in assign(services, self.pool).items():
            svc = by_key[key]
            have = _ingress_ips(svc)
            if (ip is None and not have) or (ip is not None and have == [ip]):
                continue
            ns, name = key.split("/", 1)
            if ip is not None:
                self.recorder.event(svc, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
            lb: dict[str, Any] = {"ingress": [{"ip": ip, "ipMode": "VIP"}] if ip else None}
            try:
                await self.client.patch(SERVICES, name, {"status": {"loadBalancer": lb}}, ns,
                                        subresource="status")
            except errors.StatusError as e:
                if e.code != 404:
                    raise
                continue
            if ip is not None:
                self.recorder.event(svc, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")
