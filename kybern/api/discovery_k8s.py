"""discovery.k8s.io/v1 EndpointSlice: defaults and validation
(pkg/apis/discovery). The EndpointSlice controller comes with later work."""

from __future__ import annotations

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy
from kybern.machinery import errors

ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")


class EndpointSliceStrategy(Strategy):
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        for p in obj.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("name", "")

    def validate(self, obj: Obj) -> list[Cause]:
        out: list[Cause] = []
        at = obj.get("addressType")
        if not at:
            out.append(errors.required("addressType"))
        elif at not in ADDRESS_TYPES:
            out.append(errors.cause("addressType", f'Unsupported value: "{at}": supported values: "FQDN", '
                                    '"IPv4", "IPv6"', "FieldValueNotSupported"))
        for i, ep in enumerate(obj.get("endpoints") or []):
            addrs = ep.get("addresses") or []
            if not addrs:
                out.append(errors.required(f"endpoints[{i}].addresses") |
                           {"message": "Required value: must contain at least 1 address"})
            elif len(addrs) > 100:
                out.append(errors.cause(f"endpoints[{i}].addresses", f"Too many: {len(addrs)}: must have at most "
                                        "100 items", "FieldValueTooMany"))
        if len(obj.get("endpoints") or []) > 1000:
            out.append(errors.cause("endpoints", "Too many: must have at most 1000 items", "FieldValueTooMany"))
        return out

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new)
        if new.get("addressType") != old.get("addressType"):
            out.append(errors.cause("addressType", f'Invalid value: "{new.get("addressType")}": field is '
                                    "immutable"))
        return out


RESOURCES = [
    ResourceInfo("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True,
                 "io.k8s.api.discovery.v1.EndpointSlice", strategy=EndpointSliceStrategy()),
]
