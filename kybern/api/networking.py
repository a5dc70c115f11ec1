"""networking.k8s.io/v1 Ingress, IngressClass and NetworkPolicy: defaults and
the validation users meet first (pkg/apis/networking). The ingress controller
comes with later work."""

from __future__ import annotations

import ipaddress
from typing import Any

from kybern.api.core import not_supported, port_name_causes, port_number_causes
from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy, validate_dns_subdomain, validate_label_selector
from kybern.machinery import errors

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")


def _validate_backend(b: Obj, path: str) -> list[Cause]:
    svc, res = b.get("service"), b.get("resource")
    if svc and res:
        return [errors.cause(path, "Invalid value: ...: cannot set both resource and service backends")]
    if not svc and not res:
        return [errors.required(path) | {"message": "Required value: one backend (service or resource) "
                                                    "must be specified"}]
    out: list[Cause] = []
    if svc:
        if not svc.get("name"):
            out.append(errors.required(f"{path}.service.name"))
        port = svc.get("port") or {}
        if not port.get("name") and port.get("number") is None:
            out.append(errors.required(f"{path}.service.port") |
                       {"message": "Required value: port name or number is required"})
    return out


class IngressStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"loadBalancer": {}}

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        out: list[Cause] = []
        if not spec.get("rules") and not spec.get("defaultBackend"):
            out.append(errors.cause("spec", "Invalid value: ...: either `defaultBackend` or `rules` must be "
                                    "specified"))
        if spec.get("defaultBackend"):
            out += _validate_backend(spec["defaultBackend"], "spec.defaultBackend")
        for i, rule in enumerate(spec.get("rules") or []):
            host = rule.get("host")
            if host:
                h = host[2:] if host.startswith("*.") else host
                out += validate_dns_subdomain(h, f"spec.rules[{i}].host")
            for j, p in enumerate((rule.get("http") or {}).get("paths") or []):
                pp = f"spec.rules[{i}].http.paths[{j}]"
                pt = p.get("pathType")
                if not pt:
                    out.append(errors.required(f"{pp}.pathType") |
                               {"message": "Required value: pathType must be specified"})
                elif pt not in PATH_TYPES:
                    out.append(errors.cause(f"{pp}.pathType", f'Unsupported value: "{pt}": supported values: '
                                            '"Exact", "ImplementationSpecific", "Prefix"', "FieldValueNotSupported"))
                if pt in ("Exact", "Prefix") and not str(p.get("path", "")).startswith("/"):
                    out.append(errors.cause(f"{pp}.path", f'Invalid value: "{p.get("path", "")}": must be an '
                                            "absolute path"))
                out += _validate_backend(p.get("backend") or {}, f"{pp}.backend")
        return out


class IngressClassStrategy(Strategy):
    tracks_generation = True

    def validate(self, obj: Obj) -> list[Cause]:
        ctrl = (obj.get("spec") or {}).get("controller")
        if not ctrl:
            return [errors.required("spec.controller")]
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new)
        if (new.get("spec") or {}).get("controller") != (old.get("spec") or {}).get("controller"):
            out.append(errors.cause("spec.controller", "Invalid value: ...: field is immutable"))
        return out


class NetworkPolicyStrategy(Strategy):
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("podSelector", {})
        for direction, peers in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                for p in rule.get("ports") or []:
                    p.setdefault("protocol", "TCP")
        if not spec.get("policyTypes"):
            types = ["Ingress"]
            if spec.get("egress"):
                types.append("Egress")
            spec["policyTypes"] = types

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_network_policy_spec(obj.get("spec") or {}, "spec")

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        # CIDRs the stored object already had stay allowed (ValidateNetworkPolicyUpdate)
        return validate_network_policy_spec(new.get("spec") or {}, "spec", _cidrs(old.get("spec") or {}))


def _cidrs(spec: Obj) -> set[str]:
    out: set[str] = set()
    for key, peers in (("ingress", "from"), ("egress", "to")):
        for rule in spec.get(key) or []:
            for peer in rule.get(peers) or []:
                block = peer.get("ipBlock") or {}
                out.update([block.get("cidr") or ""] + list(block.get("except") or []))
    return out


def validate_network_policy_spec(spec: Obj, path: str, old_cidrs: set[str] | None = None) -> list[Cause]:
    """ValidateNetworkPolicySpec (pkg/apis/networking/validation): selectors, ports,
    peers and policyTypes, with upstream's field paths and messages."""
    out = validate_label_selector(spec.get("podSelector"), f"{path}.podSelector")
    for key, peers in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(key) or []):
            rp = f"{path}.{key}[{i}]"
            for j, port in enumerate(rule.get("ports") or []):
                out += _validate_port(port, f"{rp}.ports[{j}]")
            for j, peer in enumerate(rule.get(peers) or []):
                out += _validate_peer(peer, f"{rp}.{peers}[{j}]", old_cidrs or set())
    types = spec.get("policyTypes") or []
    if len(types) > 2:
        return out + [errors.cause(f"{path}.policyTypes", f"Invalid value: {_go_strings(types)}: may not specify "
                                   "more than two policyTypes")]
    for i, t in enumerate(types):
        if t not in ("Ingress", "Egress"):
            out.append(not_supported(f"{path}.policyTypes[{i}]", t, ("Ingress", "Egress")))
    return out


def _go_strings(values: list[Any]) -> str:
    return "[]networking.PolicyType{" + ", ".join(f'"{v}"' for v in values) + "}"


def _validate_port(port: Obj, path: str) -> list[Cause]:
    out: list[Cause] = []
    proto = port.get("protocol")
    if proto is not None and proto not in ("TCP", "UDP", "SCTP"):
        out.append(not_supported(f"{path}.protocol", proto, ("TCP", "UDP", "SCTP")))
    number, end = port.get("port"), port.get("endPort")
    if number is None:
        if end is not None:
            out.append(errors.cause(f"{path}.endPort", f"Invalid value: {end}: may not be specified when `port` "
                                    "is not specified"))
    elif isinstance(number, int):
        out += port_number_causes(number, f"{path}.port")
        if end is not None:
            if isinstance(end, int) and end < number:
                out.append(errors.cause(f"{path}.endPort", f"Invalid value: {end}: must be greater than or equal "
                                        "to `port`"))
            out += port_number_causes(end, f"{path}.endPort")
    else:
        if end is not None:
            out.append(errors.cause(f"{path}.endPort", f"Invalid value: {end}: may not be specified when `port` "
                                    "is non-numeric"))
        out += port_name_causes(str(number), f"{path}.port")
    return out


def _validate_peer(peer: Obj, path: str, old_cidrs: set[str]) -> list[Cause]:
    out: list[Cause] = []
    n = 0
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            n += 1
            out += validate_label_selector(peer[key], f"{path}.{key}")
    block = peer.get("ipBlock")
    if block is not None:
        n += 1
        out += _validate_ip_block(block, f"{path}.ipBlock", old_cidrs)
    if n == 0:
        out.append(errors.cause(path, "Required value: must specify a peer", "FieldValueRequired"))
    elif n > 1 and block is not None:
        out.append(errors.cause(path, "Forbidden: may not specify both ipBlock and another peer",
                                "FieldValueForbidden"))
    return out


def _cidr_causes(value: str, path: str, old_cidrs: set[str]) -> tuple[Any, list[Cause]]:
    """validation.IsValidCIDR: Go's ParseCIDR (a prefix length is required; host bits may be set)."""
    try:
        if "/" not in value:
            raise ValueError(value)
        return ipaddress.ip_network(value, strict=False), []
    except ValueError:
        if value in old_cidrs:  # stored before: left alone on update
            return None, []
        return None, [errors.cause(path, f'Invalid value: "{value}": must be a valid CIDR value, (e.g. '
                                         "10.9.8.0/24 or 2001:db8::/64)")]


def _validate_ip_block(block: Obj, path: str, old_cidrs: set[str]) -> list[Cause]:
    cidr = block.get("cidr") or ""
    if not cidr:
        return [errors.required(f"{path}.cidr")]
    net, out = _cidr_causes(cidr, f"{path}.cidr", old_cidrs)
    if net is None:
        return out
    for i, e in enumerate(block.get("except") or []):
        ex, bad = _cidr_causes(e, f"{path}.except[{i}]", old_cidrs)
        out += bad
        if ex is not None and (ex.version != net.version or ex.network_address not in net
                               or net.prefixlen >= ex.prefixlen):
            out.append(errors.cause(f"{path}.except[{i}]", f'Invalid value: "{e}": must be a strict subset of '
                                    "`cidr`"))
    return out


RESOURCES = [
    ResourceInfo("networking.k8s.io", "v1", "Ingress", "ingresses", True, "io.k8s.api.networking.v1.Ingress",
                 short_names=("ing",), subresources=("status",), strategy=IngressStrategy()),
    ResourceInfo("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False,
                 "io.k8s.api.networking.v1.IngressClass", strategy=IngressClassStrategy()),
    ResourceInfo("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True,
                 "io.k8s.api.networking.v1.NetworkPolicy", short_names=("netpol",),
                 strategy=NetworkPolicyStrategy()),
]
