"""The `kubernetes` Service's endpoints: where in-cluster clients reach this
API server (upstream's endpoint reconciler in kube-apiserver, with one
address). The Endpoints and EndpointSlice named `kubernetes` in `default` hold
the advertised address and port, and the Service's targetPort is that port, so
the service proxy sends `10.96.0.1:443` (KUBERNETES_SERVICE_HOST/PORT in every
pod) here. As upstream's kubernetes-service controller, `run` re-does this every 10 s,
so a deleted `kubernetes` Service (`kubectl delete svc --all -n default`) or its
Endpoints come back."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import TYPE_CHECKING, Any

from kybern.machinery import errors

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

log = logging.getLogger(__name__)

NAME, NAMESPACE = "kubernetes", "default"
INTERVAL = 10.0  # upstream's EndpointInterval


def service(port: int = 6443) -> dict[str, Any]:
    """The `kubernetes` Service: the first address of the service range, as upstream."""
    return {"metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                                           "targetPort": port}]}}


def _endpoints(ip: str, port: int) -> dict[str, Any]:
    return {"metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}


def _slice(ip: str, port: int) -> dict[str, Any]:
    family = "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"kubernetes.io/service-name": NAME}},
            "addressType": family, "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}


async def reconcile(server: APIServer, ip: str, port: int) -> None:
    """Make the three objects say `ip:port` (written only when they differ)."""
    for (group, version, resource), want, fields in (
            (("", "v1", "endpoints"), _endpoints(ip, port), ("subsets",)),
            (("discovery.k8s.io", "v1", "endpointslices"), _slice(ip, port), ("addressType", "endpoints", "ports"))):
        store = server.store(group, version, resource)
        try:
            have = await store.get(NAMESPACE, NAME)
        except errors.StatusError as e:
            if e.code != 404:
                raise
            await store.create(NAMESPACE, want)
            continue
        if any(have.get(f) != want[f] for f in fields):
            def put(cur: dict[str, Any] | None, want: dict[str, Any] = want) -> dict[str, Any]:
                assert cur is not None
                return {**cur, **{k: v for k, v in want.items() if k != "metadata"}}
            await store.update(NAMESPACE, NAME, put)
    services = server.store("", "v1", "services")
    try:
        svc = await services.get(NAMESPACE, NAME)
    except errors.StatusError as e:
        if e.code != 404:
            raise
        await services.create(NAMESPACE, service(port))
        return
    ports = (svc.get("spec") or {}).get("ports") or []
    if [p.get("targetPort") for p in ports] != [port]:
        def retarget(cur: dict[str, Any] | None) -> dict[str, Any]:
            assert cur is not None
            for p in cur["spec"]["ports"]:
                p["targetPort"] = port
            return cur
        await services.update(NAMESPACE, NAME, retarget)


async def run(server: APIServer, ip: str, port: int, interval: float = INTERVAL) -> None:
    """reconcile every `interval` seconds, forever; a failed pass is logged and retried."""
    while True:
        await asyncio.sleep(interval)
        try:
            await reconcile(server, ip, port)
        except Exception as e:  # noqa: BLE001 - storage or API trouble: the next pass retries
            log.warning("kubernetes service: %s (will retry in %.0fs)", e, interval)
