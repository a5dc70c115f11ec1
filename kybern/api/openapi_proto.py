"""The protobuf form of `/openapi/v2`: our swagger 2.0 JSON as a gnostic
`openapi.v2.Document`.

client-go's `DiscoveryClient.OpenAPISchema()` (used by kubectl's client-side
schema validation, e.g. `kubectl apply -f` of a `kind: List`) asks for
`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and
proto-unmarshals the body into gnostic's Document. kube-apiserver makes those
bytes with kube-openapi's `ToProtoBinary`: `openapi_v2.ParseDocument(json)` (gnostic's
generated compiler) then `proto.Marshal`. This module does the same conversion in
Python, driven by gnostic's own descriptor (extracted from kubectl by
tools/extract_k8s_protos.py into kybern/api/data/gnostic-openapiv2.binpb):

- object fields map to proto fields by name (`basePath` -> `base_path`, `$ref` -> `_ref`);
  keys starting with `x-` become `vendor_extension` entries (NamedAny);
- string-keyed maps become repeated Named* pairs in the JSON's key order (gnostic keeps
  YAML order): `Paths.path`, `Responses.response_code`, `additional_properties` of
  Definitions, Properties, SecurityDefinitions, SecurityRequirement, ...;
- gnostic's oneof wrappers pick their branch as its compiler does: ParametersItem
  (`$ref` -> json_reference), Parameter (`in: body` -> body_parameter, else the
  non-body sub-schema named by `in`), ResponseValue, SchemaItem (`type: file`),
  AdditionalPropertiesItem (bool or schema), ItemsItem (one schema or a list),
  TypeItem (string or list), SecurityDefinitionsItem (by `type`/`flow`);
- free-form values (`default`, `enum`, `example`, extension values) become
  `Any{yaml}` holding the value as YAML text.

The result is cached by the JSON's content hash (the ETag, as upstream: both
representations share it), so the ~1 s conversion runs once per document.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

import orjson
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from kybern.api import openapi
from kybern.api.registry import ResourceInfo

CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
# client-go still asks with the deprecated "@" spelling; upstream accepts both and
# answers with CONTENT_TYPE.
ACCEPTED_SUBTYPES = ("com.github.proto-openapi.spec.v2@v1.0+protobuf",
                     "com.github.proto-openapi.spec.v2.v1.0+protobuf")
_PKG = "openapi.v2."
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@functools.lru_cache(maxsize=1)
def pool() -> descriptor_pool.DescriptorPool:
    """gnostic's OpenAPIv2.proto (and any.proto) in a private pool."""
    data = resources.files("kybern.api").joinpath("data/gnostic-openapiv2.binpb").read_bytes()
    p = descriptor_pool.DescriptorPool()
    for f in descriptor_pb2.FileDescriptorSet.FromString(data).file:  # dependencies first
        p.Add(f)
    return p


@functools.cache
def message_class(name: str) -> type[Message]:
    """The dynamic message class of e.g. "Document" (openapi.v2.Document)."""
    return message_factory.GetMessageClass(pool().FindMessageTypeByName(_PKG + name))


@functools.cache
def _field_name(key: str) -> str:
    return "_ref" if key == "$ref" else _CAMEL.sub("_", key).lower()


@functools.cache
def _yaml_text(key: bytes) -> str:
    # Go's yaml.v3 marshals a scalar as "value\n"; PyYAML adds a "...\n" document
    # end marker after top-level scalars, which parses the same but is dropped to
    # match.
    text = yaml.dump(orjson.loads(key), Dumper=_Dumper, default_flow_style=False,
                     sort_keys=False, allow_unicode=True, width=1 << 30)
    return text[:-4] if text.endswith("\n...\n") else text


_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _fill_any(msg: Message, value: Any) -> None:
    msg.yaml = _yaml_text(orjson.dumps(value))


# -- map messages: {name: value} -> repeated Named* -------------------------------------


def _named(msg: Message, field: str, items: Iterable[tuple[str, Any]]) -> None:
    repeated = getattr(msg, field)
    pair_type = msg.DESCRIPTOR.fields_by_name[field].message_type
    if pair_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
        for name, value in items:
            pair = repeated.add()
            pair.name = name
            _fill(pair.value, value)
    else:  # NamedString
        for name, value in items:
            repeated.add(name=name, value=value)


def _fill_map(msg: Message, value: dict[str, Any]) -> None:
    _named(msg, "additional_properties", value.items())


def _fill_paths(msg: Message, value: dict[str, Any]) -> None:
    _named(msg, "vendor_extension", ((k, v) for k, v in value.items() if k.startswith("x-")))
    _named(msg, "path", ((k, v) for k, v in value.items() if not k.startswith("x-")))


def _fill_responses(msg: Message, value: dict[str, Any]) -> None:
    _named(msg, "vendor_extension", ((k, v) for k, v in value.items() if k.startswith("x-")))
    _named(msg, "response_code", ((k, v) for k, v in value.items() if not k.startswith("x-")))


# -- oneof wrappers ------------------------------------------------------------------------


def _fill_parameters_item(msg: Message, value: dict[str, Any]) -> None:
    if "$ref" in value:
        _fill(msg.json_reference, value)
    else:
        _fill(msg.parameter, value)


def _fill_parameter(msg: Message, value: dict[str, Any]) -> None:
    if value.get("in") == "body":
        _fill(msg.body_parameter, value)
    else:
        _fill(msg.non_body_parameter, value)


_NON_BODY = {"header": "header_parameter_sub_schema", "formData": "form_data_parameter_sub_schema",
             "query": "query_parameter_sub_schema", "path": "path_parameter_sub_schema"}


def _fill_non_body(msg: Message, value: dict[str, Any]) -> None:
    _fill(getattr(msg, _NON_BODY[value.get("in", "query")]), value)


def _fill_response_value(msg: Message, value: dict[str, Any]) -> None:
    if "$ref" in value:
        _fill(msg.json_reference, value)
    else:
        _fill(msg.response, value)


def _fill_schema_item(msg: Message, value: dict[str, Any]) -> None:
    _fill(msg.file_schema if value.get("type") == "file" else msg.schema, value)


def _fill_additional_properties(msg: Message, value: Any) -> None:
    if isinstance(value, bool):
        msg.boolean = value
    else:
        _fill(msg.schema, value)


def _fill_items(msg: Message, value: Any) -> None:
    for schema in value if isinstance(value, list) else [value]:
        _fill(msg.schema.add(), schema)


def _fill_type(msg: Message, value: Any) -> None:
    msg.value.extend(value if isinstance(value, list) else [value])


_SECURITY = {"basic": "basic_authentication_security", "apiKey": "api_key_security",
             "implicit": "oauth2_implicit_security", "password": "oauth2_password_security",
             "application": "oauth2_application_security",
             "accessCode": "oauth2_access_code_security"}


def _fill_security_item(msg: Message, value: dict[str, Any]) -> None:
    kind = value.get("flow") if value.get("type") == "oauth2" else value.get("type")
    _fill(getattr(msg, _SECURITY[kind]), value)


_SPECIAL: dict[str, Callable[[Message, Any], None]] = {
    "Any": _fill_any,
    "Paths": _fill_paths,
    "Responses": _fill_responses,
    "ParametersItem": _fill_parameters_item,
    "Parameter": _fill_parameter,
    "NonBodyParameter": _fill_non_body,
    "ResponseValue": _fill_response_value,
    "SchemaItem": _fill_schema_item,
    "AdditionalPropertiesItem": _fill_additional_properties,
    "ItemsItem": _fill_items,
    "TypeItem": _fill_type,
    "StringArray": _fill_type,
    "SecurityDefinitionsItem": _fill_security_item,
}
for _name in ("Default", "Definitions", "Examples", "Headers", "Oauth2Scopes", "ParameterDefinitions",
              "Properties", "ResponseDefinitions", "SecurityDefinitions", "SecurityRequirement",
              "VendorExtension"):
    _SPECIAL[_name] = _fill_map


# -- plain messages --------------------------------------------------------------------------


def _fill(msg: Message, value: Any) -> None:
    desc: Descriptor = msg.DESCRIPTOR
    special = _SPECIAL.get(desc.name)
    if special is not None:
        special(msg, value)
        return
    if not isinstance(value, dict):
        raise TypeError(f"{desc.name}: expected an object, got {type(value).__name__}")
    fields = desc.fields_by_name
    extensions = []
    for key, item in value.items():
        if key.startswith("x-"):
            extensions.append((key, item))
            continue
        fd = fields.get(_field_name(key))
        if fd is None:
            # gnostic rejects the whole document on an unknown key or a mistyped value;
            # we drop the key so one odd CRD schema (OpenAPI 3 `nullable`, `anyOf`...)
            # cannot take client-side validation down (tests check for none).
            _dropped.add(f"{desc.name}.{key}")
            continue
        try:
            _set(msg, fd, item)
        except (TypeError, ValueError, AttributeError, KeyError):
            msg.ClearField(fd.name)
            _dropped.add(f"{desc.name}.{key}")
    if extensions and "vendor_extension" in fields:
        _named(msg, "vendor_extension", extensions)


def _set(msg: Message, fd: FieldDescriptor, value: Any) -> None:
    repeated = fd.is_repeated
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        if repeated:
            target = getattr(msg, fd.name)
            for item in value:
                _fill(target.add(), item)
        else:
            _fill(getattr(msg, fd.name), value)
            if not msg.HasField(fd.name):  # an empty object still marks presence
                getattr(msg, fd.name).SetInParent()
    elif repeated:
        getattr(msg, fd.name).extend(value)
    elif fd.type == FieldDescriptor.TYPE_DOUBLE:
        setattr(msg, fd.name, float(value))
    else:
        setattr(msg, fd.name, value)


_dropped: set[str] = set()


def to_document(doc: dict[str, Any]) -> Message:
    """The openapi.v2.Document message of a swagger 2.0 JSON document."""
    msg = message_class("Document")()
    _fill(msg, doc)
    return msg


def dropped_keys() -> list[str]:
    """Keys the conversions so far found no gnostic field for (`Message.key`)."""
    return sorted(_dropped)


_lock = threading.Lock()
_cache: dict[str, bytes] = {}


def encode(body: bytes, etag: str) -> bytes:
    """proto.Marshal of the Document for the JSON `body`, cached by its hash `etag`.

    Blocking (~1 s on a miss): call it from a worker thread. Concurrent callers
    wait for the one conversion."""
    data = _cache.get(etag)
    if data is not None:
        return data
    with _lock:
        data = _cache.get(etag)
        if data is None:
            # Parse the served bytes, like upstream, so the key order is the JSON's.
            data = to_document(orjson.loads(body)).SerializeToString()
            if len(_cache) >= 4:  # documents change rarely (CRDs); keep a few
                _cache.clear()
            _cache[etag] = data
    return data


def v2_protobuf(resource_infos: Iterable[ResourceInfo]) -> tuple[bytes, str]:
    """(protobuf v2 document, ETag shared with the JSON form)."""
    body, etag = openapi.v2_json(resource_infos)
    return encode(body, etag), etag


def wants_protobuf(accept: str) -> bool | None:
    """What an Accept header picks, as kube-openapi's handler does: True for the
    protobuf document, False for JSON, None when neither is acceptable (406).
    Clauses are tried by descending q; `*` matches either, preferring JSON."""
    if not accept.strip():
        accept = "*/*"
    clauses: list[tuple[float, int, str, str]] = []
    for index, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            k, _, v = p.partition("=")
            if k.strip() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if q <= 0 or "/" not in media:
            continue
        typ, _, sub = media.partition("/")
        clauses.append((-q, index, typ.strip(), sub.strip()))
    for _, _, typ, sub in sorted(clauses):
        if typ not in ("application", "*"):
            continue
        if sub in ("json", "*"):
            return False
        if sub in ACCEPTED_SUBTYPES:
            return True
    return None
