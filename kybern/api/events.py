"""events.k8s.io/v1 Event: the same stored objects as core/v1 Events, seen through
another schema (pkg/apis/events/v1 conversion), as upstream serves both groups
from one etcd prefix. client-go's newer event recorder (tools/events) and
`kubectl get events.events.k8s.io` use this group; core events show up in it and
events written here show up in `kubectl get events`.

Field names: involvedObject <-> regarding, message <-> note, source <->
deprecatedSource, firstTimestamp/lastTimestamp/count <-> deprecatedFirstTimestamp/
deprecatedLastTimestamp/deprecatedCount, reportingComponent <-> reportingController."""

from __future__ import annotations

from typing import Any

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy
from kybern.machinery import errors

CORE, V1 = "v1", "events.k8s.io/v1"
# (core name, events.k8s.io name); the rest (metadata, eventTime, series, action,
# reason, related, type, reportingInstance) keep their names
_RENAMED = (("involvedObject", "regarding"), ("message", "note"), ("source", "deprecatedSource"),
            ("firstTimestamp", "deprecatedFirstTimestamp"), ("lastTimestamp", "deprecatedLastTimestamp"),
            ("count", "deprecatedCount"), ("reportingComponent", "reportingController"))
_LIMITS = {"reportingInstance": 128, "action": 128, "reason": 128}


def _rename(obj: Obj, pairs: tuple[tuple[str, str], ...], api_version: str) -> Obj:
    out: dict[str, Any] = {"apiVersion": api_version, "kind": "Event"}
    mapping = dict(pairs)
    for k, v in obj.items():
        if k in ("apiVersion", "kind"):
            continue
        out[mapping.get(k, k)] = v
    return out


def to_events_v1(obj: Obj) -> Obj:
    return _rename(obj, _RENAMED, V1)


def to_core(obj: Obj) -> Obj:
    return _rename(obj, tuple((b, a) for a, b in _RENAMED), CORE)


class EventsV1Strategy(Strategy):
    storage_version = CORE
    # events.k8s.io/v1's field selectors (AddFieldLabelConversionsForEvent); they select on
    # the stored core/v1 fields (regarding.* on involvedObject.*, reportingController on
    # reportingComponent), which selectors.field_value reads in either form
    field_labels = ("reason", "type", "reportingController",
                    *(f"regarding.{f}" for f in ("kind", "namespace", "name", "uid", "apiVersion",
                                                 "resourceVersion", "fieldPath")))

    def convert(self, obj: Obj, api_version: str) -> Obj:
        return to_events_v1(obj) if api_version == V1 else to_core(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        """ValidateEventCreate for the events.k8s.io group (what its recorder must send)."""
        out: list[Cause] = []
        if obj.get("type") not in ("Normal", "Warning"):
            out.append(errors.cause("type", f'Invalid value: "": has invalid value: {obj.get("type") or ""}'))
        for field in ("reportingController", "reportingInstance", "action", "reason"):
            v = obj.get(field)
            if not v:
                out.append(errors.required(field))
            elif field in _LIMITS and len(str(v)) > _LIMITS[field]:
                out.append(errors.cause(field, f'Invalid value: "": can have at most {_LIMITS[field]} characters'))
        if len(str(obj.get("note") or "")) > 1024:
            out.append(errors.cause("note", 'Invalid value: "": can have at most 1024 characters'))
        return out

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return []  # as upstream's update validation for old-style events written through core/v1


RESOURCES = [
    ResourceInfo("events.k8s.io", "v1", "Event", "events", True, "io.k8s.api.events.v1.Event", short_names=("ev",),
                 strategy=EventsV1Strategy(), storage_group=""),
]
