"""networking.k8s.io/v1 Ingress, IngressClass and NetworkPolicy: defaults and
the validation users meet first (pkg/apis/networking). The ingress controller
comes with later work."""

from __future__ import annotations

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy, validate_dns_subdomain
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
        out: list[Cause] = []
        for i, t in enumerate((obj.get("spec") or {}).get("policyTypes") or []):
            if t not in ("Ingress", "Egress"):
                out.append(errors.cause(f"spec.policyTypes[{i}]", f'Unsupported value: "{t}": supported values: '
                                        '"Ingress", "Egress"', "FieldValueNotSupported"))
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
