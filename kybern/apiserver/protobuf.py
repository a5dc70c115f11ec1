"""Decode `application/vnd.kubernetes.protobuf` request bodies into the
JSON-shaped dicts the rest of the apiserver works with.

client-go's typed clients (kubectl create deployment/configmap/secret/...,
drain's evictions and deletes) send protobuf. The wire format is:

    "k8s\\x00" + runtime.Unknown{typeMeta{apiVersion, kind}, raw, contentEncoding, contentType}

where `raw` is the gogo-protobuf encoding of the typed object. The schema comes
from kubectl's own embedded descriptors (tools/extract_k8s_protos.py writes them
to kybern/api/data/k8s-protos.binpb); it is loaded once, on first use.

The conversion follows Go's JSON encoding of the same struct, since that is what
a JSON client would have sent:
- field names are the .proto names (already the JSON names), but for the few the
  .proto spells otherwise (BoundObjectReference `uID`, Variable `Name`, ...): the
  OpenAPI property of the same name in another case;
- Time/MicroTime -> RFC 3339 strings (zero time -> null), Duration -> Go's
  duration string, IntOrString -> int or str, Quantity -> str,
  RawExtension/FieldsV1 -> the embedded JSON, bytes -> base64;
- non-pointer Go scalars (gogo `nullable=false`) are always on the wire, so their
  zero values are dropped as `omitempty` would, unless the OpenAPI definition
  lists the field as required (no omitempty); pointer scalars keep explicit
  zeros (`replicas: 0`, `gracePeriodSeconds: 0`); present messages, even empty
  ones, become `{}` as Go emits non-pointer structs;
- inline-embedded structs (Volume.volumeSource, Probe.handler,
  IngressRule.ingressRuleValue) are merged into their parent.

Responses stay JSON: clients send `Accept: application/vnd.kubernetes.protobuf,
application/json` and accept either.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
from importlib import resources
from typing import Any

import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, unknown_fields
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from kybern.machinery import errors

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_RUNTIME = "k8s.io.apimachinery.pkg.runtime"
_GOGO_NULLABLE = 65001  # gogoproto.nullable: 0 marks a Go non-pointer field
_ZERO_UNIX = -62135596800  # Go's zero time.Time as Unix seconds


@functools.lru_cache(maxsize=1)
def pool() -> descriptor_pool.DescriptorPool:
    """The descriptor pool of every k8s.io generated.proto (~15 ms, once)."""
    data = resources.files("kybern.api").joinpath("data/k8s-protos.binpb").read_bytes()
    fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    p = descriptor_pool.DescriptorPool()
    for f in fds.file:  # the file lists dependencies first
        p.Add(f)
    _packages.update(f.package for f in fds.file)
    return p


_packages: set[str] = set()


@functools.cache
def message_class(full_name: str) -> type[Message]:
    """The dynamic message class for e.g. "k8s.io.api.apps.v1.Deployment"."""
    return message_factory.GetMessageClass(pool().FindMessageTypeByName(full_name))


def proto_package(api_version: str) -> str:
    """The .proto package of an apiVersion: "apps/v1" -> "k8s.io.api.apps.v1"."""
    group, _, version = api_version.rpartition("/")
    if not group:
        return f"k8s.io.api.core.{version}"
    if group == "meta.k8s.io":
        return f"k8s.io.apimachinery.pkg.apis.meta.{version}"
    if group == "metrics.k8s.io":
        return f"k8s.io.metrics.pkg.apis.metrics.{version}"
    if group == "internal.apiserver.k8s.io":
        return f"k8s.io.api.apiserverinternal.{version}"
    # rbac.authorization.k8s.io -> rbac, flowcontrol.apiserver.k8s.io -> flowcontrol, ...
    return f"k8s.io.api.{group.split('.')[0]}.{version}"


def message_name(api_version: str, kind: str) -> str:
    """The full message name for (apiVersion, kind). Options types such as
    DeleteOptions are registered in every group version but live in meta/v1."""
    p = pool()
    pkg = proto_package(api_version)
    if pkg not in _packages:
        raise errors.StatusError(
            415, "UnsupportedMediaType",
            f'the body of the request was in an unknown format - protobuf is not supported for '
            f'"{api_version}" - accepted media types include: application/json, application/yaml')
    for candidate in (f"{pkg}.{kind}", f"{_META}.{kind}"):
        try:
            p.FindMessageTypeByName(candidate)
            return candidate
        except KeyError:
            continue
    raise errors.bad_request(f'no kind "{kind}" is registered for version "{api_version}"')


def wrap(api_version: str, kind: str, raw: bytes) -> bytes:
    """The envelope client-go sends: magic + runtime.Unknown around `raw`."""
    unk = message_class(f"{_RUNTIME}.Unknown")()
    unk.typeMeta.apiVersion = api_version
    unk.typeMeta.kind = kind
    unk.raw = raw
    unk.contentEncoding = ""
    unk.contentType = ""
    return MAGIC + unk.SerializeToString()


def decode(raw: bytes) -> dict[str, Any]:
    """A protobuf request body as the dict its JSON form would parse to."""
    if not raw.startswith(MAGIC):
        raise errors.bad_request("provided data does not appear to be a protobuf message, "
                                 "expected prefix [107 56 115 0]")
    try:
        unk = message_class(f"{_RUNTIME}.Unknown").FromString(raw[len(MAGIC):])
    except DecodeError as e:
        raise errors.bad_request(f"unable to decode protobuf envelope: {e}") from None
    api_version, kind = unk.typeMeta.apiVersion, unk.typeMeta.kind
    if not kind or not api_version:
        raise errors.bad_request("Object 'Kind' is missing in protobuf envelope")
    if unk.contentEncoding:
        raise errors.bad_request(f"unsupported protobuf content encoding {unk.contentEncoding!r}")
    if unk.contentType and unk.contentType.split(";")[0] == "application/json":
        try:
            obj = orjson.loads(unk.raw)
        except orjson.JSONDecodeError as e:
            raise errors.bad_request(f"error decoding JSON: {e}") from None
        if not isinstance(obj, dict):
            raise errors.bad_request("the embedded JSON body is not an object")
        return {"kind": kind, "apiVersion": api_version, **obj}
    if unk.contentType and unk.contentType.split(";")[0] != CONTENT_TYPE:
        raise errors.bad_request(f"unsupported content type {unk.contentType!r} in protobuf envelope")
    name = message_name(api_version, kind)
    try:
        msg = message_class(name).FromString(unk.raw)
    except DecodeError as e:
        raise errors.bad_request(f"unable to decode {kind} from protobuf: {e}") from None
    return {"kind": kind, "apiVersion": api_version, **to_json(msg)}


# ---- message -> JSON value ----------------------------------------------------------

def to_json(msg: Message) -> Any:
    """The JSON value Go would marshal for the struct that encoded `msg`."""
    desc: Descriptor = msg.DESCRIPTOR
    special = _SPECIAL.get(desc.full_name)
    if special is not None:
        return special(msg)
    if desc.name in ("ExtraValue", "Verbs") and [f.name for f in desc.fields] == ["items"]:
        return list(msg.items)  # Go `type X []string`, wrapped as a message on the wire
    plan = _plan(desc)
    names = _json_names.get(desc.full_name) or {}
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        if fd.is_repeated:
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                vfd = fd.message_type.fields_by_name["value"]
                out[fd.name] = {k: _scalar_or_message(vfd, v) for k, v in value.items()}
            else:
                out[fd.name] = [_scalar_or_message(fd, v) for v in value]
            continue
        how = plan.get(fd.name)
        if how == _OMIT_ZERO and not value:
            continue  # Go zero value of a non-pointer `omitempty` field
        if how == _INLINE:
            inner = to_json(value)
            if isinstance(inner, dict):
                out.update(inner)  # Go `json:",inline"` embedding (Volume.VolumeSource, ...)
            continue
        out[names.get(fd.name, fd.name)] = _scalar_or_message(fd, value)
    return out


def _scalar_or_message(fd: FieldDescriptor, value: Any) -> Any:
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return to_json(value)
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if fd.type == FieldDescriptor.TYPE_ENUM:
        return fd.enum_type.values_by_number[value].name if value in fd.enum_type.values_by_number \
            else value
    return value


_OMIT_ZERO, _INLINE = 1, 2
_plans: dict[str, dict[str, int]] = {}
_json_names: dict[str, dict[str, str]] = {}  # .proto name -> JSON name where they differ


def _plan(desc: Descriptor) -> dict[str, int]:
    """How each field of `desc` maps to Go's JSON, computed once per message type.

    The wire alone cannot tell two Go details apart, so the type's OpenAPI
    definition supplies them: a non-pointer scalar that
    is `required` has no `omitempty` (its zero value is sent, e.g. a PDB status's
    `currentHealthy: 0`), and a message field missing from the definition's
    properties is an inline-embedded struct whose fields belong to the parent.
    """
    plan = _plans.get(desc.full_name)
    if plan is not None:
        return plan
    from kybern.api import schemas  # loaded by the apiserver anyway; ~45 ms otherwise

    # k8s.io.api.core.v1.Volume is io.k8s.api.core.v1.Volume in OpenAPI
    name = desc.full_name
    definition = (schemas.definition("io.k8s." + name[len("k8s.io."):])
                  if name.startswith("k8s.io.") else None) or {}
    props = definition.get("properties") or {}
    required = set(definition.get("required") or ())
    plan = {}
    lower = {k.lower(): k for k in props}
    for fd in desc.fields:
        if fd.is_repeated:
            continue
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            if props and fd.name not in props and fd.message_type.full_name not in _SPECIAL:
                plan[fd.name] = _INLINE
            continue
        json_name = fd.name
        if props and fd.name not in props and fd.name.lower() in lower:
            json_name = _json_names.setdefault(desc.full_name, {})[fd.name] = lower[fd.name.lower()]
        if _non_pointer(fd) and json_name not in required:
            plan[fd.name] = _OMIT_ZERO
    _plans[desc.full_name] = plan
    return plan


def _non_pointer(fd: FieldDescriptor) -> bool:
    """Whether gogo generated a Go non-pointer field (option nullable=false)."""
    if fd.has_options:
        for f in unknown_fields.UnknownFieldSet(fd.GetOptions()):
            if f.field_number == _GOGO_NULLABLE:
                return f.data == 0
    return False


def _time(msg: Message) -> str | None:
    # Go writes the zero time as an empty message and marshals it as JSON null;
    # metav1.Time keeps whole seconds only (its Unmarshal drops nanos).
    if not msg.HasField("seconds") or msg.seconds == _ZERO_UNIX:
        return None
    t = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(seconds=msg.seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(msg: Message) -> str | None:
    if not msg.HasField("seconds") and not msg.HasField("nanos"):
        return None
    if msg.seconds == _ZERO_UNIX and msg.nanos == 0:
        return None
    t = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(
        seconds=msg.seconds, microseconds=msg.nanos // 1000)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 0s, 1.5s, 2m0s, 1h0m0s, 300ms, 1.5µs, 10ns."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < 1_000_000_000:
        if u < 1_000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            return f"{sign}{_frac(u, 3)}µs"
        return f"{sign}{_frac(u, 6)}ms"
    s = f"{_frac(u % 60_000_000_000, 9)}s"
    minutes = u // 60_000_000_000
    if minutes:
        s = f"{minutes % 60}m{s}"
        if minutes // 60:
            s = f"{minutes // 60}h{s}"
    return sign + s


def _frac(v: int, prec: int) -> str:
    whole, frac = divmod(v, 10 ** prec)
    digits = f"{frac:0{prec}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def _int_or_string(msg: Message) -> int | str:
    return msg.strVal if msg.type == 1 else msg.intVal


def _embedded(raw: bytes) -> Any:
    """RawExtension / FieldsV1 payload: JSON (the usual case) or a nested protobuf object."""
    if not raw:
        return None
    if raw.startswith(MAGIC):
        return decode(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise errors.bad_request(f"embedded object is neither JSON nor protobuf: {e}") from None


_SPECIAL: dict[str, Any] = {
    f"{_META}.Time": _time,
    f"{_META}.MicroTime": _micro_time,
    f"{_META}.Duration": lambda m: go_duration(m.duration),
    f"{_META}.FieldsV1": lambda m: _embedded(m.Raw),
    f"{_RUNTIME}.RawExtension": lambda m: _embedded(m.raw),
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": lambda m: m.string,
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": lambda m: m.string,
}
