"""The protobuf /openapi/v2 document: gnostic's Document decoded back must equal our JSON."""

from typing import Any

import orjson
import pytest
import yaml
from google.protobuf.message import Message

from kybern.api import openapi, openapi_proto
from tests.unit.api.served import SERVED

# Oneof wrappers and map messages, inverted (the rules of kybern.api.openapi_proto).
_ONEOF = {"ParametersItem", "Parameter", "NonBodyParameter", "ResponseValue", "SchemaItem",
          "AdditionalPropertiesItem", "SecurityDefinitionsItem"}
_MAPS = {"Default", "Definitions", "Examples", "Headers", "Oauth2Scopes", "ParameterDefinitions",
         "Properties", "ResponseDefinitions", "SecurityDefinitions", "SecurityRequirement",
         "VendorExtension"}


def _camel(name: str) -> str:
    if name == "_ref":
        return "$ref"
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def _pairs(repeated: Any) -> dict[str, Any]:
    return {p.name: (_back(p.value) if isinstance(p.value, Message) else p.value) for p in repeated}


def _back(msg: Message) -> Any:
    """gnostic message -> the JSON it was made from."""
    name = msg.DESCRIPTOR.name
    if name == "Any":
        return yaml.safe_load(msg.yaml)
    if name == "TypeItem":  # gnostic keeps `type: x` as a one-element list
        return msg.value[0] if len(msg.value) == 1 else list(msg.value)
    if name == "StringArray":
        return list(msg.value)
    if name == "ItemsItem":
        assert len(msg.schema) == 1  # we only emit single-schema items
        return _back(msg.schema[0])
    if name in _ONEOF:
        which = msg.WhichOneof("oneof")
        assert which is not None, name
        value = getattr(msg, which)
        return _back(value) if isinstance(value, Message) else value
    if name in _MAPS:
        return _pairs(msg.additional_properties)
    if name == "Paths":
        return {**_pairs(msg.path), **_pairs(msg.vendor_extension)}
    if name == "Responses":
        return {**_pairs(msg.response_code), **_pairs(msg.vendor_extension)}
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        if fd.name == "vendor_extension":
            out.update(_pairs(value))
        elif fd.message_type is not None:
            out[_camel(fd.name)] = [_back(v) for v in value] if fd.is_repeated else _back(value)
        else:
            out[_camel(fd.name)] = list(value) if fd.is_repeated else value
    return out


def _falsy_dropped(node: Any) -> Any:
    """proto3 has no presence for scalars: `false`, `0` and `""` are not on the wire
    (gnostic's Go structs drop them the same way)."""
    if isinstance(node, list):
        return [_falsy_dropped(x) for x in node]
    if isinstance(node, dict):
        return {k: v if k.startswith("x-") else _falsy_dropped(v) for k, v in node.items()
                if k.startswith("x-") or v not in (False, 0, "") or isinstance(v, (dict, list))}
    return node


@pytest.fixture(scope="module")
def encoded() -> tuple[bytes, bytes, str]:
    body, etag = openapi.v2_json(SERVED)
    return body, openapi_proto.encode(body, etag), etag


def test_document_round_trips_to_the_json(encoded):
    body, data, _ = encoded
    doc = openapi_proto.message_class("Document").FromString(data)
    assert doc.swagger == "2.0" and doc.info.title == "Kubernetes"
    assert _back(doc) == _falsy_dropped(orjson.loads(body))
    assert openapi_proto.dropped_keys() == []


def test_map_order_follows_the_json(encoded):
    body, data, _ = encoded
    doc = openapi_proto.message_class("Document").FromString(data)
    source = orjson.loads(body)
    assert [p.name for p in doc.paths.path] == list(source["paths"])
    assert [d.name for d in doc.definitions.additional_properties] == list(source["definitions"])


def test_kubectl_shapes(encoded):
    _, data, _ = encoded
    doc = openapi_proto.message_class("Document").FromString(data)
    defs = {d.name: d.value for d in doc.definitions.additional_properties}
    deploy = defs["io.k8s.api.apps.v1.Deployment"]
    assert list(deploy.type.value) == ["object"]
    ext = {e.name: yaml.safe_load(e.value.yaml) for e in deploy.vendor_extension}
    # kube-openapi's proto models read the GVK list from this YAML.
    assert ext["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment",
                                                       "version": "v1"}]
    props = {p.name: p.value for p in deploy.properties.additional_properties}
    assert props["spec"]._ref == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    labels = {p.name: p.value for p in defs["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
              .properties.additional_properties}["labels"]
    assert labels.additional_properties.schema.type.value == ["string"]
    containers = {p.name: p.value for p in defs["io.k8s.api.core.v1.PodSpec"]
                  .properties.additional_properties}["containers"]
    assert containers.items.schema[0]._ref == "#/definitions/io.k8s.api.core.v1.Container"
    path = {p.name: p.value for p in doc.paths.path}[
        "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    params = [p.parameter.non_body_parameter for p in path.parameters]
    assert params[0].path_parameter_sub_schema.name == "name"
    body = path.put.parameters[0].parameter.body_parameter
    assert body.name == "body" and body.schema._ref.endswith("apps.v1.Deployment")
    codes = [r.name for r in path.put.responses.response_code]
    assert codes[0] == "200" and "401" in codes
    assert doc.security_definitions.additional_properties[0].value.api_key_security.name == \
        "authorization"


def test_any_yaml_like_go_yaml():
    # scalars carry no "..." document-end marker (Go's yaml.v3 writes "merge\n")
    assert openapi_proto._yaml_text(b'"merge"') == "merge\n"
    assert openapi_proto._yaml_text(b'"true"') == "'true'\n"
    assert openapi_proto._yaml_text(b'true') == "true\n"
    assert yaml.safe_load(openapi_proto._yaml_text(b'[{"a":"1"}]')) == [{"a": "1"}]


def test_encode_is_cached_by_etag(encoded):
    body, data, etag = encoded
    assert openapi_proto.encode(body, etag) is data


@pytest.mark.parametrize("accept,expected", [
    ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", True),
    ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf", True),
    ("application/json", False),
    ("", False),
    ("*/*", False),
    ("application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf", True),
    ("text/html", None),
])
def test_accept_negotiation(accept, expected):
    assert openapi_proto.wants_protobuf(accept) is expected
