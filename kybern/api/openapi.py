"""The OpenAPI documents kube-apiserver publishes, built from the resource registry:

- `/openapi/v2`                    swagger 2.0, everything       -> v2_document()
- `/openapi/v3`                    index of per-group-version docs -> v3_index()
- `/openapi/v3/apis/<g>/<v>`, ...  OpenAPI 3.0 per group-version  -> v3_document()

kubectl depends on their exact shape: `create/apply --validate=strict` looks for the
`fieldValidation` query parameter on the PATCH operation whose
`x-kubernetes-group-version-kind` is the object's GVK (cli-runtime's
queryParamVerifierV3) and, when found, lets the server validate; `kubectl explain`
finds the GVK among the operations of `/apis/<g>/<v>/<resource>` paths, then the
schema carrying that GVK in components.schemas. Operation ids, actions and
parameters follow upstream's naming (listAppsV1NamespacedDeployment, ...).

Documents are cached per (set of resources, schema generation); the v3 hash is a
content hash (SHA-512, upper-case hex, as upstream), so it is stable across restarts.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

import orjson

from kybern.api import crschema
from kybern.api import openapi_paths as ops
from kybern.api import schemas
from kybern.api.registry import ResourceInfo

KUBE_VERSION = "v1.32.0"
_V3_REF = "#/components/schemas/"
_SECURITY = {"BearerToken": {"description": "Bearer Token authentication", "type": "apiKey",
                             "name": "authorization", "in": "header"}}


@dataclass
class _Cached:
    doc: dict[str, Any]
    body: bytes = b""
    hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_lock = threading.Lock()
_cache: dict[tuple[Any, ...], _Cached] = {}
schemas.on_change(_cache.clear)


def _resources_key(resources: Iterable[ResourceInfo]) -> tuple[Any, ...]:
    return tuple(sorted((r.group, r.version, r.plural, r.kind, r.namespaced, r.definition,
                         r.subresources, r.verbs) for r in resources))


def _cached(key: tuple[Any, ...], build: Any) -> _Cached:
    entry = _cache.get(key)
    if entry is None:
        doc = build()
        body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        entry = _Cached(doc, body, hashlib.sha512(body).hexdigest().upper())
        with _lock:
            if len(_cache) > 256:  # registries change rarely; never grow without bound
                _cache.clear()
            _cache[key] = entry
    return entry


def content_hash(body: bytes) -> str:
    return hashlib.sha512(body).hexdigest().upper()


# ---------------------------------------------------------------------------
# v2


def v2_document(resources: Iterable[ResourceInfo]) -> dict[str, Any]:
    """Swagger 2.0 document for every served resource. Do not mutate the result."""
    return _v2(list(resources)).doc


def v2_json(resources: Iterable[ResourceInfo]) -> tuple[bytes, str]:
    """(serialized v2 document, content hash for ETag)."""
    entry = _v2(list(resources))
    return entry.body, entry.hash


def _v2(resources: list[ResourceInfo]) -> _Cached:
    key = ("v2", schemas.generation(), _resources_key(resources))
    return _cached(key, lambda: _build_v2(resources))


def _build_v2(resources: list[ResourceInfo]) -> dict[str, Any]:
    items = ops.path_items(resources, include_roots=True)
    paths: dict[str, Any] = {}
    for item in items:
        entry: dict[str, Any] = {}
        for op in item.operations:
            entry[op.method] = _v2_operation(op)
        if item.parameters:
            entry["parameters"] = [_v2_parameter(p) for p in item.parameters]
        paths[item.path] = entry
    defs = schemas.definitions()
    names = schemas.reachable(ops.referenced_definitions(resources, items))
    crds = schemas.registered()
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION},
        "paths": paths,
        "definitions": {name: crschema.to_v2(defs[name]) if name in crds else defs[name]
                        for name in sorted(names)},
        "securityDefinitions": _SECURITY,
        "security": [{"BearerToken": []}],
    }


def _v2_parameter(name: str) -> dict[str, Any]:
    spec = ops.PARAMETERS[name]
    out: dict[str, Any] = {"uniqueItems": True, "type": spec.type, "description": spec.description,
                           "name": spec.name, "in": spec.location}
    if spec.location == "path":
        out["required"] = True
    return out


def _v2_operation(op: ops.Operation) -> dict[str, Any]:
    params = [_v2_parameter(p) for p in op.parameters]
    if op.body:
        params.insert(0, {"name": "body", "in": "body", "required": op.body_required,
                          "schema": {"$ref": schemas._REF_PREFIX + op.body}})
    out: dict[str, Any] = {
        "description": op.description,
        "consumes": list(op.consumes),
        "produces": list(op.produces),
        "schemes": ["https"],
        "tags": [op.tag],
        "operationId": op.operation_id,
        "responses": _v2_responses(op),
    }
    if params:
        out["parameters"] = params
    if op.action:
        out["x-kubernetes-action"] = op.action
    if op.gvk is not None:
        out["x-kubernetes-group-version-kind"] = dict(op.gvk)
    return out


def _v2_responses(op: ops.Operation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in op.codes:
        out[str(code)] = {"description": ops.CODE_TEXT[code],
                          "schema": _response_schema(op.response, schemas._REF_PREFIX)}
    out["401"] = {"description": "Unauthorized"}
    return out


def _response_schema(response: str, prefix: str) -> dict[str, Any]:
    if response in ("string", "object"):
        return {"type": response}
    return {"$ref": prefix + response}


# ---------------------------------------------------------------------------
# v3


def v3_index(resources: Iterable[ResourceInfo]) -> dict[str, Any]:
    """The `/openapi/v3` discovery document: one entry per served path, each URL
    carrying the content hash of its document."""
    resources = list(resources)
    paths: dict[str, Any] = {}
    for path in _v3_paths(resources):
        _, digest = v3_path_json(path, resources) or (b"", "")
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def _v3_paths(resources: list[ResourceInfo]) -> list[str]:
    out = ["api", "apis"]
    groups = sorted({r.group for r in resources if r.group})
    gvs = sorted({(r.group, r.version) for r in resources})
    out += [f"apis/{g}" for g in groups]
    out += [ops.gv_path(g, v).lstrip("/") for g, v in gvs]
    return out


def v3_document(group: str, version: str, resources: Iterable[ResourceInfo]) -> dict[str, Any] | None:
    """OpenAPI 3.0 document for one group-version, or None if nothing is served there."""
    entry = v3_path_json(ops.gv_path(group, version).lstrip("/"), list(resources))
    return orjson.loads(entry[0]) if entry else None


def v3_path_json(path: str, resources: Iterable[ResourceInfo]) -> tuple[bytes, str] | None:
    """(serialized v3 document, hash) for an index path such as `apis/apps/v1`, `api/v1`,
    `api`, `apis` or `apis/apps`; None when unknown."""
    resources = list(resources)
    path = path.strip("/")
    key = ("v3", path, schemas.generation(), _resources_key(resources))
    entry = _cache.get(key)
    if entry is None:
        doc = _build_v3_for_path(path, resources)
        if doc is None:
            return None
        entry = _cached(key, lambda: doc)
    return entry.body, entry.hash


def _build_v3_for_path(path: str, resources: list[ResourceInfo]) -> dict[str, Any] | None:
    parts = path.split("/")
    if path == "api":
        items = [ops.core_versions_item()]
    elif path == "apis":
        items = [ops.api_versions_item()]
    elif len(parts) == 2 and parts[0] == "apis":
        if not any(r.group == parts[1] for r in resources):
            return None
        items = [ops.group_item(parts[1])]
    elif (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        served = [r for r in resources if r.group == group and r.version == version]
        if not served:
            return None
        items = ops.path_items(served, include_roots=False, group_version=(group, version))
        return _build_v3(items, served)
    else:
        return None
    return _build_v3(items, [])


def _build_v3(items: list[ops.PathItem], resources: list[ResourceInfo]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for item in items:
        entry: dict[str, Any] = {}
        for op in item.operations:
            entry[op.method] = _v3_operation(op)
        if item.parameters:
            entry["parameters"] = [_v3_parameter(p) for p in item.parameters]
        paths[item.path] = entry
    defs = schemas.definitions()
    names = schemas.reachable(ops.referenced_definitions(resources, items))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION},
        "paths": paths,
        "components": {
            "schemas": {name: _to_v3(defs[name]) for name in sorted(names)},
            "securitySchemes": _SECURITY,
        },
        "security": [{"BearerToken": []}],
    }


def _v3_parameter(name: str) -> dict[str, Any]:
    spec = ops.PARAMETERS[name]
    out: dict[str, Any] = {"name": spec.name, "in": spec.location, "description": spec.description,
                           "schema": {"type": spec.type, "uniqueItems": True}}
    if spec.location == "path":
        out["required"] = True
    return out


def _v3_operation(op: ops.Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tags": [op.tag],
        "description": op.description,
        "operationId": op.operation_id,
    }
    if op.parameters:
        out["parameters"] = [_v3_parameter(p) for p in op.parameters]
    if op.body:
        body_schema = {"$ref": _V3_REF + op.body}
        out["requestBody"] = {"content": {ct: {"schema": body_schema} for ct in op.consumes},
                              "required": op.body_required}
    responses: dict[str, Any] = {}
    for code in op.codes:
        schema = _response_schema(op.response, _V3_REF)
        responses[str(code)] = {"description": ops.CODE_TEXT[code],
                                "content": {ct: {"schema": schema} for ct in op.produces}}
    responses["401"] = {"description": "Unauthorized"}
    out["responses"] = responses
    if op.action:
        out["x-kubernetes-action"] = op.action
    if op.gvk is not None:
        out["x-kubernetes-group-version-kind"] = dict(op.gvk)
    return out


def _to_v3(node: Any) -> Any:
    """swagger-2.0 schema -> OpenAPI 3.0 schema: component refs, and `$ref` with
    siblings wrapped in `allOf` (3.0 ignores siblings of $ref; upstream wraps too)."""
    if isinstance(node, list):
        return [_to_v3(x) for x in node]
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-embedded-resource") is True and \
            "metadata" not in (node.get("properties") or {}):
        # left out of the shared (v2) definition under preserve-unknown-fields; v3 has them
        node = {**node, "properties": dict(node.get("properties") or {}),
                "required": list(node.get("required") or [])}
        crschema.embed(node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _wrap_ref(_to_v3(sub)) for name, sub in value.items()}
        elif key == "$ref" and isinstance(value, str):
            out[key] = _V3_REF + value.rsplit("/", 1)[-1]
        elif isinstance(value, (dict, list)) and key not in ("x-kubernetes-group-version-kind",
                                                             "required", "enum"):
            out[key] = _to_v3(value)
        else:
            out[key] = value
    return out


def _wrap_ref(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node and len(node) > 1:
        wrapped = {k: v for k, v in node.items() if k != "$ref"}
        wrapped["allOf"] = [{"$ref": node["$ref"]}]
        return wrapped
    return node
