"""Load balancers' health checks for `externalTrafficPolicy: Local` Services, as
kube-proxy's service health server (pkg/proxy/healthcheck/service_health.go).

A LoadBalancer Service with that policy gets a `spec.healthCheckNodePort` from the
apiserver. Each node's service proxy listens on it (at the node's address) and
answers any HTTP request with the number of the Service's ready endpoints on this
node: 200 when there is one, 503 when there is none, so a load balancer sends
traffic only to nodes that have a pod of the Service:

    {
    	"service": {
    		"namespace": "default",
    		"name": "loadbalancer"
    	},
    	"localEndpoints": 1,
    	"serviceProxyHealthy": true
    }

(tab-indented, and the count in `X-Load-Balancing-Endpoint-Weight`, as upstream).
A port another process holds is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Want = dict[int, tuple[str, str, int]]  # health check port -> (namespace, name, local endpoints)


def wanted(services: list[dict[str, Any]], slices: list[dict[str, Any]], node_name: str) -> Want:
    """Every health check port this node serves, with its Service's local ready
    endpoints (each address:port once, as kube-proxy's LocalReadyEndpoints)."""
    local: dict[tuple[str, str], set[tuple[str, int]]] = {}
    for sl in slices:
        m = sl.get("metadata") or {}
        svc = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not svc:
            continue
        eps = local.setdefault((m.get("namespace") or "", svc), set())
        for ep in sl.get("endpoints") or []:
            if ep.get("nodeName") != node_name or (ep.get("conditions") or {}).get("ready") is False:
                continue
            for p in sl.get("ports") or []:
                for addr in (ep.get("addresses") or [])[:1]:
                    eps.add((addr, int(p.get("port") or 0)))
    out: Want = {}
    for svc in services:
        m, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        port = spec.get("healthCheckNodePort")
        if port and spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            ns, name = m.get("namespace") or "", m.get("name") or ""
            out[int(port)] = (ns, name, len(local.get((ns, name), ())))
    return out


def body(namespace: str, name: str, count: int, healthy: bool) -> str:
    return ("{\n\t\"service\": {\n\t\t\"namespace\": " + json.dumps(namespace) + ",\n\t\t\"name\": "
            + json.dumps(name) + "\n\t},\n\t\"localEndpoints\": " + str(count)
            + ",\n\t\"serviceProxyHealthy\": " + ("true" if healthy else "false") + "\n}")


class HealthCheckServers:
    def __init__(self, address: str) -> None:
        self.address = address
        self.healthy = True
        self._want: Want = {}
        self._servers: dict[int, asyncio.Server] = {}
        self._failed: set[int] = set()  # ports that could not be bound (said once)

    async def sync(self, want: Want) -> None:
        self._want = want
        for port in [p for p in self._servers if p not in want]:
            self._servers.pop(port).close()
        self._failed &= set(want)
        for port in want:
            if port in self._servers or port in self._failed:
                continue
            try:
                self._servers[port] = await asyncio.start_server(
                    lambda r, w, port=port: self._answer(port, r, w), self.address, port)
            except OSError as e:
                self._failed.add(port)
                log.warning("health check port %s:%d for %s/%s not served: %s", self.address, port,
                            want[port][0], want[port][1], e)

    async def close(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()

    async def _answer(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            want = self._want.get(port)
            if want is None:
                return  # closed meanwhile: upstream answers nothing either
            ns, name, count = want
            text = body(ns, name, count, self.healthy).encode()
            status = "200 OK" if count and self.healthy else "503 Service Unavailable"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
                         f"X-Load-Balancing-Endpoint-Weight: {count}\r\nContent-Length: {len(text)}\r\n"
                         "Connection: close\r\n\r\n".encode() + text)
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
