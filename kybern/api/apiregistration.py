"""apiregistration.k8s.io/v1 APIService (kube-aggregator's registry and
validation). Every group/version the apiserver serves has a Local APIService, as
kube-apiserver's autoregister controller makes them; others may be stored (the
Python client's e2e suite registers one), but kybern does not proxy aggregated
APIs, so their group is not added to discovery."""

from __future__ import annotations

import re
from typing import Any

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy, validate_dns_subdomain
from kybern.machinery import errors, meta

GROUP = "apiregistration.k8s.io"
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

# kube-apiserver's apiVersionPriorities (cmd/kube-apiserver/app/aggregator.go):
# group -> (groupPriorityMinimum, {version: versionPriority})
PRIORITIES: dict[str, tuple[int, dict[str, int]]] = {
    "": (18000, {"v1": 1}),
    "apps": (17800, {"v1": 15}),
    "events.k8s.io": (17750, {"v1": 15}),
    "authentication.k8s.io": (17700, {"v1": 15}),
    "authorization.k8s.io": (17600, {"v1": 15}),
    "autoscaling": (17500, {"v1": 15, "v2": 30}),
    "batch": (17400, {"v1": 15}),
    "certificates.k8s.io": (17300, {"v1": 15}),
    "networking.k8s.io": (17200, {"v1": 15}),
    "policy": (17100, {"v1": 15}),
    "rbac.authorization.k8s.io": (17000, {"v1": 15}),
    "storage.k8s.io": (16800, {"v1": 15}),
    "apiextensions.k8s.io": (16700, {"v1": 15}),
    "admissionregistration.k8s.io": (16700, {"v1": 15}),
    "scheduling.k8s.io": (16600, {"v1": 15}),
    "coordination.k8s.io": (16500, {"v1": 15}),
    "node.k8s.io": (16300, {"v1": 15}),
    "discovery.k8s.io": (16200, {"v1": 15}),
    "flowcontrol.apiserver.k8s.io": (16100, {"v1": 15}),
    "apiregistration.k8s.io": (18000, {"v1": 15}),
    "metrics.k8s.io": (100, {"v1beta1": 100}),
}


def local_apiservice(group: str, version: str) -> Obj:
    """The Local APIService kube-apiserver keeps for a group/version it serves."""
    gmin, vers = PRIORITIES.get(group, (1000, {}))
    return {"apiVersion": f"{GROUP}/v1", "kind": "APIService",
            "metadata": {"name": f"{version}.{group}", "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": gmin,
                     "versionPriority": vers.get(version, 15)}}


def _invalid(field: str, value: Any, why: str) -> Cause:
    shown = f'"{value}"' if isinstance(value, str) else ("true" if value is True else str(value))
    return errors.cause(field, f"Invalid value: {shown}: {why}")


class APIServiceStrategy(Strategy):
    has_status = True

    @staticmethod
    def name_validator(name: str, field: str) -> list[Cause]:
        return []  # checked against spec in validate (the name must be version.group)

    def default(self, obj: Obj) -> None:
        svc = (obj.get("spec") or {}).get("service")
        if isinstance(svc, dict):
            svc.setdefault("port", 443)

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        spec = obj.get("spec") or {}
        if spec.get("service") is None:
            obj["status"] = {"conditions": [{
                "type": "Available", "status": "True", "lastTransitionTime": _now(), "reason": "Local",
                "message": "Local APIServices are always available"}]}
        else:  # nothing here proxies to an aggregated apiserver, so it never becomes available
            obj["status"] = {"conditions": [{
                "type": "Available", "status": "False", "lastTransitionTime": _now(), "reason": "ServiceNotFound",
                "message": f'service/{spec["service"].get("name")} in "{spec["service"].get("namespace")}" is '
                           "not present"}]}

    def validate(self, obj: Obj) -> list[Cause]:
        """ValidateAPIService."""
        spec = obj.get("spec") or {}
        out: list[Cause] = []
        group, version = spec.get("group") or "", spec.get("version") or ""
        name = (obj.get("metadata") or {}).get("name") or ""
        required = f"{version}.{group}"
        if "/" in name or "%" in name or name in (".", ".."):
            out.append(_invalid("metadata.name", name, "may not contain '/'"))
        elif name != required:
            out.append(_invalid("metadata.name", name, f'must be `spec.version+"."+spec.group`: "{required}"'))
        if not group and version != "v1":
            out.append(errors.cause("spec.group", "Required value: only v1 may have an empty group and it better "
                                    "be legacy kube", "FieldValueRequired"))
        if group:
            out.extend(validate_dns_subdomain(group, "spec.group"))
        if not _DNS1035.match(version) or len(version) > 63:
            out.append(_invalid("spec.version", version, "a DNS-1035 label must consist of lower case alphanumeric "
                                "characters or '-', start with an alphabetic character, and end with an "
                                "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
                                "is '[a-z]([-a-z0-9]*[a-z0-9])?')"))
        gmin, vprio = spec.get("groupPriorityMinimum") or 0, spec.get("versionPriority") or 0
        if not 0 < gmin <= 20000:
            out.append(_invalid("spec.groupPriorityMinimum", gmin, "must be positive and less than 20000"))
        if not 0 < vprio <= 1000:
            out.append(_invalid("spec.versionPriority", vprio, "must be positive and less than 1000"))
        svc = spec.get("service")
        if svc is None:
            if spec.get("caBundle"):
                out.append(errors.cause("spec.caBundle", f'Invalid value: "{len(spec["caBundle"])} bytes": local '
                                        "APIServices may not have a caBundle"))
            if spec.get("insecureSkipTLSVerify"):
                out.append(_invalid("spec.insecureSkipTLSVerify", True,
                                    "local APIServices may not have insecureSkipTLSVerify"))
            return out
        if not svc.get("namespace"):
            out.append(errors.required("spec.service.namespace"))
        if not svc.get("name"):
            out.append(errors.required("spec.service.name"))
        port = svc.get("port")
        if not isinstance(port, int) or not 1 <= port <= 65535:
            out.append(_invalid("spec.service.port", port, "must be between 1 and 65535, inclusive"))
        if spec.get("insecureSkipTLSVerify") and spec.get("caBundle"):
            out.append(_invalid("spec.insecureSkipTLSVerify", True, "may not be true if caBundle is present"))
        return out


def _now() -> str:
    return meta.now()


RESOURCES = [
    ResourceInfo(GROUP, "v1", "APIService", "apiservices", False,
                 "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService", categories=("api-extensions",),
                 subresources=("status",), strategy=APIServiceStrategy()),
]
