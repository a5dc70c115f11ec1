"""Service address allocation at create time, as kube-apiserver's service REST
does: a clusterIP from the service CIDR and node ports from 30000-32767 (and a
healthCheckNodePort for a LoadBalancer Service with externalTrafficPolicy: Local).

Used addresses are read from the stored Services on each allocation (no
separate bitmap), which is enough for one apiserver; several apiservers on one
store could race, as noted in docs/apiserver.md.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from kybern.machinery import errors

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
NODE_PORTS = range(30000, 32768)


def _used(services: list[dict[str, Any]]) -> tuple[set[str], set[int]]:
    ips: set[str] = set()
    ports: set[int] = set()
    for s in services:
        spec = s.get("spec") or {}
        ips.update(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
        for p in spec.get("ports") or []:
            if p.get("nodePort"):
                ports.add(int(p["nodePort"]))
        if spec.get("healthCheckNodePort"):
            ports.add(int(spec["healthCheckNodePort"]))
    return ips, ports


def _needs_health_check_port(spec: dict[str, Any]) -> bool:
    """upstream's needsHCNodePort: kube-proxy answers load balancers' health checks
    for a LoadBalancer Service that keeps traffic on nodes with a local endpoint."""
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _health_check_port(spec: dict[str, Any], name: str, ports: set[int], keep: int | None = None) -> None:
    """spec.healthCheckNodePort: the one given (free and in range; `keep`, the one the
    Service already holds, needs no check), else a free one from the node port range."""
    hc = spec.get("healthCheckNodePort")
    if hc and hc != keep:
        for why in (("provided port is already allocated" if hc in ports else None),
                    (None if hc in NODE_PORTS else "provided port is not in the valid range. The range of "
                     "valid ports is 30000-32767")):
            if why:
                raise errors.invalid("", "Service", name, [errors.cause(
                    "spec.healthCheckNodePort", f"Invalid value: {hc}: {why}")])
    elif not hc:
        free = [x for x in NODE_PORTS if x not in ports]
        if not free:
            raise errors.internal("failed to allocate a nodePort: range is full")
        spec["healthCheckNodePort"] = random.choice(free)
    ports.add(spec["healthCheckNodePort"])


def allocate(svc: dict[str, Any], existing: list[dict[str, Any]]) -> None:
    spec = svc.setdefault("spec", {})
    name = svc.get("metadata", {}).get("name", "")
    typ = spec.get("type", "ClusterIP")
    if typ == "ExternalName":
        return
    ips, ports = _used(existing)
    ip = spec.get("clusterIP")
    if ip == "None":
        spec["clusterIPs"] = ["None"]
    elif ip:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise errors.invalid("", "Service", name, [errors.cause(
                "spec.clusterIPs[0]", f'Invalid value: "{ip}": must be a valid IP address')]) from None
        if addr not in SERVICE_CIDR:
            raise errors.invalid("", "Service", name, [errors.cause(
                "spec.clusterIPs", f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: the '
                f'provided IP ({ip}) is not in the valid range. The range of valid IPs is {SERVICE_CIDR}')])
        if ip in ips:
            raise errors.invalid("", "Service", name, [errors.cause(
                "spec.clusterIPs", f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: provided '
                f'IP is already allocated')])
        spec["clusterIPs"] = [ip]
    else:
        size = SERVICE_CIDR.num_addresses
        start = random.randrange(2, size - 1)
        for i in range(size - 3):
            cand = str(SERVICE_CIDR.network_address + 2 + (start + i) % (size - 3))
            if cand not in ips:
                spec["clusterIP"] = cand
                spec["clusterIPs"] = [cand]
                break
        else:
            raise errors.internal("failed to allocate a serviceIP: range is full")
    if typ in ("NodePort", "LoadBalancer"):
        _node_ports(spec, name, ports)
        if _needs_health_check_port(spec):
            _health_check_port(spec, name, ports)


def allocate_on_update(svc: dict[str, Any], old: dict[str, Any], others: list[dict[str, Any]]) -> None:
    """An update that makes a Service need node ports (ClusterIP -> NodePort or
    LoadBalancer, or a new port) gets them; node ports it names must be free and in
    range. `others`: every other Service."""
    spec = svc.get("spec") or {}
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        return
    _, ports = _used(others)
    name = svc.get("metadata", {}).get("name", "")
    ospec = old.get("spec") or {}
    held = ospec.get("healthCheckNodePort") if _needs_health_check_port(ospec) else None
    if held and _needs_health_check_port(spec) and spec.get("healthCheckNodePort") in (None, held):
        ports.add(held)  # still the Service's: no nodePort may take it
    _node_ports(spec, name, ports)
    if _needs_health_check_port(spec):
        if not spec.get("healthCheckNodePort") and held:
            spec["healthCheckNodePort"] = held
        _health_check_port(spec, name, ports, keep=held)
    elif held and spec.get("healthCheckNodePort") == held:
        del spec["healthCheckNodePort"]  # released with externalTrafficPolicy: Local, as upstream


def _node_ports(spec: dict[str, Any], name: str, ports: set[int]) -> None:
    """Each port's nodePort: the one it names if free and in range, else a free one;
    `ports`: those in use (each one given here is added)."""
    for i, p in enumerate(spec.get("ports") or []):
        np = p.get("nodePort")
        if np:
            if np in ports:
                raise errors.invalid("", "Service", name, [errors.cause(
                    f"spec.ports[{i}].nodePort", f"Invalid value: {np}: provided port is already allocated")])
            if np not in NODE_PORTS:
                raise errors.invalid("", "Service", name, [errors.cause(
                    f"spec.ports[{i}].nodePort", f"Invalid value: {np}: provided port is not in the valid "
                    f"range. The range of valid ports is 30000-32767")])
        else:
            free = [x for x in NODE_PORTS if x not in ports]
            if not free:
                raise errors.internal("failed to allocate a nodePort: range is full")
            np = random.choice(free)
            p["nodePort"] = np
        ports.add(np)
    spec.setdefault("externalTrafficPolicy", "Cluster")
