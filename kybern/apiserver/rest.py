"""REST handlers: turn one HTTP request on a resource path into a call on the
kind's RESTStore, as k8s.io/apiserver's endpoints/handlers do (create.go,
get.go, update.go, patch.go, delete.go, watch.go).

Path shapes served (group "" is /api/v1, others /apis/<g>/<v>):
  <gv>/<plural>                                 list, watch, create, deletecollection
  <gv>/<plural>/<name>[/<sub>]                  cluster-scoped object and subresource
  <gv>/namespaces/<ns>/<plural>[/<name>[/<sub>]] namespaced
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
import yaml
from aiohttp import web

from kybern.api import tables
from kybern.api.registry import ResourceInfo
from kybern.apiserver import admission_webhooks, noderestriction
from kybern.apiserver.store import RESTStore
from kybern.machinery import errors, gojson, managedfields

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

log = logging.getLogger(__name__)

JSON = "application/json"
MAX_BODY = 3 * 1024 * 1024
BOOKMARK_INTERVAL = 5.0


def json_response(obj: Any, status: int = 200, *, content_type: str = JSON,
                  warnings: list[str] | None = None) -> web.Response:
    headers = _warning_headers(warnings)
    try:
        body = orjson.dumps(obj)
    except TypeError:  # e.g. an error message quoting a client's invalid string: answer all the same
        body = json.dumps(obj, default=str).encode()
    return web.Response(body=body, status=status, content_type=content_type.split(";")[0],
                        headers=headers) if ";" not in content_type else \
        web.Response(body=body, status=status, headers={"Content-Type": content_type, **headers})


_TRUE, _FALSE = {"1", "t", "T", "TRUE", "true", "True"}, {"0", "f", "F", "FALSE", "false", "False"}


def wants_pretty(request: web.Request) -> bool:
    """kube-apiserver's isPrettyPrint: `?pretty=` (Go's ParseBool; anything else is
    false), else a User-Agent of curl, Wget or a browser (`Mozilla/5.0`)."""
    if "pretty" in request.query_string:
        value = request.query.get("pretty", "")
        if value:
            return value in _TRUE
    ua = request.headers.get("User-Agent", "")
    return ua.startswith(("curl", "Wget", "Mozilla/5.0"))


def pretty_printed(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """A whole JSON answer indented by two spaces, without the final newline, as the
    apiserver's pretty serializer writes it (json.MarshalIndent), when the client
    asked for it (wants_pretty). Streams (watch, logs) and other types pass as they are."""
    if type(resp) is not web.Response or resp.content_type != "application/json" or \
            not isinstance(resp.body, bytes) or not resp.body or not wants_pretty(request):
        return resp
    try:
        resp.body = orjson.dumps(orjson.loads(resp.body), option=orjson.OPT_INDENT_2)
    except orjson.JSONDecodeError:
        pass
    return resp


def status_response(e: errors.StatusError, code: int | None = None) -> web.Response:
    """A failure Status as kube-apiserver writes it: metav1.Status's field order
    and the newline Go's json.Encoder ends it with (clients that compare bodies,
    such as the Python client's FailToCreateError text, see the same bytes)."""
    st = e.status()
    try:
        body = orjson.dumps(st)
    except TypeError:  # a message quoting a client's invalid string
        body = json.dumps(st, default=str, separators=(",", ":")).encode()
    return web.Response(body=body + b"\n", status=code or e.code, content_type=JSON)


def object_response(obj: Any, wire: bytes | None, status: int = 200, *,
                    warnings: list[str] | None = None) -> web.Response:
    """json_response(obj) of a written object whose wire JSON the store spliced
    (`wire` is `orjson.dumps(obj)` byte for byte), or encoded here when None."""
    if wire is None:
        return json_response(obj, status, warnings=warnings)
    return web.Response(body=wire, status=status, content_type=JSON, headers=_warning_headers(warnings))


def _warning_headers(warnings: list[str] | None) -> dict[str, str]:
    return {"Warning": warning_header(warnings)} if warnings else {}


def warning_header(warnings: list[str]) -> str:
    return ", ".join(f'299 - "{_warning_text(w)}"' for w in warnings)


# control characters become spaces, as Go's net/http writes header values (a raw
# newline would be a header injection; aiohttp refuses and drops the connection)
_HEADER_SAFE = {i: " " for i in (*range(9), *range(10, 32), 127)}


def _warning_text(text: str) -> str:
    """RFC 7234 warn-text: a quoted string with `"` and `\\` escaped (NewWarningHeader)."""
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates from YAML escapes
    return text.replace("\\", "\\\\").replace('"', '\\"').translate(_HEADER_SAFE)


async def read_raw(request: web.Request) -> bytes:
    """The whole request body, or 413 past MAX_BODY. (StreamReader.read(n) returns
    what has arrived so far, not n bytes: a body in several TCP segments needs a loop.)"""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(1 << 16)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.too_large()
        chunks.append(chunk)
        if size == request.content_length:  # all of it (the parser stops there): no read for the EOF
            break
    raw = request["raw_body"] = b"".join(chunks)  # kept for the audit log's requestObject
    return raw


def body_type(request: web.Request) -> str:
    """The request body's media type, without parameters (JSON when not given)."""
    return (request.headers.get("Content-Type") or JSON).split(";")[0].strip().lower()


async def read_body(request: web.Request) -> Any:
    return decode_body(await read_raw(request), body_type(request))


MAX_DEPTH = 200  # nesting a body may have; deeper is a 400 before any recursive code sees it


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        cur, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(cur, dict):
            stack.extend((v, depth + 1) for v in cur.values())
        elif isinstance(cur, list):
            stack.extend((v, depth + 1) for v in cur)
    return False


def _yaml_as_json(v: Any) -> Any:
    """What sigs.k8s.io/yaml's YAML-to-JSON gives: string keys, integers beyond
    64 bits as floats, timestamps and binaries as strings, valid UTF-8."""
    if isinstance(v, dict):
        return {_yaml_key(k): _yaml_as_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_yaml_as_json(x) for x in v]
    if v is None or isinstance(v, (bool, float)):
        return v
    if isinstance(v, int):
        if -(2 ** 63) <= v < 2 ** 64:
            return v
        try:
            return float(v)
        except OverflowError:
            raise errors.bad_request(f"error converting YAML to JSON: number {v:.3e} out of range") from None
    if isinstance(v, str):
        return _valid_utf8(v)
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    return str(v)


def _yaml_key(k: Any) -> str:
    if isinstance(k, bool):
        return "true" if k else "false"
    return "null" if k is None else _valid_utf8(k) if isinstance(k, str) else str(_yaml_as_json(k))


def _valid_utf8(v: str) -> str:
    """YAML's "\ud83d\ude00" escapes give surrogate halves: pair them, and replace
    lone ones with U+FFFD, as Go's JSON encoder does."""
    try:
        v.encode()
        return v
    except UnicodeEncodeError:
        return v.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def decode_body(raw: bytes, ctype: str) -> Any:
    if not raw.strip():
        raise errors.bad_request("the server rejected our request due to an error in our request: "
                                 "request body is empty")
    if ctype in ("application/json", "application/json-patch+json", "application/merge-patch+json",
                 "application/strategic-merge-patch+json", "*/*", ""):
        try:
            out = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise errors.bad_request(f"error decoding JSON: {e}") from None
        # counting brackets is C-fast; only a body that could be too deep is walked
        if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _too_deep(out):
            raise errors.bad_request("error decoding JSON: exceeded max depth")
        return out
    if ctype in ("application/yaml", "application/apply-patch+yaml", "text/yaml"):
        try:
            out = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise errors.bad_request(f"error converting YAML to JSON: {e}") from None
        except RecursionError:
            raise errors.bad_request("error converting YAML to JSON: exceeded max depth") from None
        if _too_deep(out):
            raise errors.bad_request("error converting YAML to JSON: exceeded max depth")
        return _yaml_as_json(out)
    if ctype.strip().lower() == "application/vnd.kubernetes.protobuf":
        from kybern.apiserver import protobuf  # lazy: loads the descriptor pool on first use
        return protobuf.decode(raw)
    raise errors.unsupported_media_type()


def decode_object(raw: bytes, ctype: str, kind: str) -> Any:
    """decode_body for a create or update: a JSON body that does not parse (YAML sent
    without a Content-Type, as `kubectl create --raw -f x.yaml` does) is refused as
    upstream's transformDecodeError words it, the body summarised as summarizeData does."""
    try:
        out = decode_body(raw, ctype)
    except errors.StatusError as e:
        why = gojson.syntax_error(raw) if e.message.startswith("error decoding JSON: ") else None
        if why is None:
            raise
    else:
        if out is None or isinstance(out, dict) or ctype not in (JSON, "*/*", ""):
            return out
        # valid JSON but no object: Go's error for the struct upstream reads apiVersion/kind into
        what = {bool: "bool", str: "string", list: "array"}.get(type(out), "number")
        why = (f"json: cannot unmarshal {what} into Go value of type struct {{ APIVersion string "
               '"json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }')
    head = raw[:30]
    summary = (head.decode(errors="replace") if raw[:1] == b"{" else head.hex()) + (" ..." if len(raw) > 30 else "")
    raise errors.bad_request(f"the object provided is unrecognized (must be of type {kind}): couldn't get "
                             f"version/kind; json parse error: {why} ({summary})")


def parse_path(server: "APIServer", segs: list[str], group: str, version: str
               ) -> tuple[ResourceInfo, str | None, str | None, str | None]:
    """(info, namespace, name, subresource) or a 404 Status."""
    reg = server.registry
    ns = name = sub = None
    if len(segs) >= 3 and segs[0] == "namespaces":
        cand = reg.get(group, version, segs[2])
        if cand is not None and cand.namespaced:
            info, ns = cand, segs[1]
            rest = segs[3:]
        else:
            info = reg.get(group, version, "namespaces")  # type: ignore[assignment]
            rest = segs[1:]
    else:
        info = reg.get(group, version, segs[0]) if segs else None  # type: ignore[assignment]
        rest = segs[1:]
    if info is not None and len(rest) > 2 and rest[1] == "proxy" and "proxy" in info.subresources:
        rest = rest[:2]  # nodes/N/proxy/PATH: the path is the proxy's (proxy.py)
    if info is None or len(rest) > 2:
        raise errors.StatusError(404, "NotFound", "the server could not find the requested resource",
                                 details={"causes": [{"reason": "UnexpectedServerResponse",
                                                      "message": "404 page not found"}]})
    if rest:
        name = rest[0]
    if len(rest) == 2:
        sub = rest[1]
        if sub not in info.subresources:  # NewNotFound(GroupResource{}, ""): empty, not absent, details
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource",
                                     details={})
    return info, ns, name, sub


_OPTIONS_KIND = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}


def wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def query_bool(request: web.Request, key: str) -> bool:
    return request.query.get(key, "").lower() in ("true", "1")


def dry_run(request: web.Request, options: dict[str, Any] | None = None) -> bool:
    """dryRun=All from the query or, for deletes, from DeleteOptions (where kubectl puts it)."""
    vals = list(request.query.getall("dryRun", []))
    body_vals = (options or {}).get("dryRun") or []
    vals += body_vals if isinstance(body_vals, list) else [body_vals]
    for v in vals:
        if v != "All":
            raise errors.bad_request(f'dryRun: Unsupported value: "{v}": supported values: "All"')
    return bool(vals)


def field_validation(request: web.Request) -> str:
    v = request.query.get("fieldValidation", "Warn") or "Warn"
    if v not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(f'fieldValidation: Unsupported value: "{v}": supported values: '
                                 '"Ignore", "Strict", "Warn"')
    return v


async def handle(server: "APIServer", request: web.Request, group: str, version: str,
                 segs: list[str]) -> web.StreamResponse:
    info, ns, name, sub = parse_path(server, segs, group, version)
    if info.plural == "bindings" and not info.group:  # POST .../bindings binds the pod it names
        from kybern.apiserver import subresources

        if request.method != "POST" or name is not None or sub:
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        return await subresources.legacy_binding(server, request, ns)
    if info.verbs == ("create",):  # answered, never stored (reviews.py)
        from kybern.apiserver import reviews

        if request.method != "POST" or name is not None:
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        return json_response(await reviews.answer(server, info, await read_body(request), request.get("user"), ns),
                             201)
    if info.verbs == ("get", "list") and info.plural == "componentstatuses" and not info.group:
        from kybern.apiserver import componentstatus  # answered from health checks, never stored

        return await componentstatus.handle(server, request, name, sub)
    store = server.store_for(info)
    method = request.method
    if method != "GET":  # which write the admission webhooks see (admission_webhooks.py)
        admission_webhooks.REQUEST.set((request, info, sub))
        await noderestriction.check_request(server, request, info.group, info.plural, ns, name, sub)
    if method in _OPTIONS_KIND:  # whose fields this write sets (metadata.managedFields)
        managedfields.REQUEST.set(managedfields.WriteRequest(managedfields.manager_from(
            request.query.get("fieldManager"), request.headers.get("User-Agent"), _OPTIONS_KIND[method]), sub or ""))
    if info.namespaced and ns is None and name is not None:
        raise errors.StatusError(404, "NotFound", "the server could not find the requested resource", details={})
    if sub:
        handler = server.subresources.get((info.group, info.plural, sub)) or \
            server.subresources.get(("*", "*", sub))
        if handler is None:
            raise errors.method_not_allowed("the server does not allow this method on the requested "
                                            "resource")
        return await handler(server, request, store, ns, name)
    if name is None:
        if method == "GET":
            if query_bool(request, "watch"):
                return await watch(server, request, store, ns)
            return await list_(request, store, ns)
        if method == "POST":
            warnings: list[str] = []
            body = decode_object(await read_raw(request), body_type(request), info.kind)
            obj, wire = await store.create_wire(ns, body, dry_run=dry_run(request),
                                                field_validation=field_validation(request), warnings=warnings)
            return object_response(obj, wire, 201, warnings=warnings)
        if method == "DELETE" and "deletecollection" in info.verbs:  # namespaces have none
            return await delete_collection(request, store, ns)
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    if method == "GET":
        if query_bool(request, "watch"):
            return await watch(server, request, store, ns, name=name)
        if wants_table(request):
            obj = await store.get(ns, name, resource_version=request.query.get("resourceVersion"))
            return json_response(tables.table(tables.printer_for(info.group, info.kind), [obj],
                                              include_object=request.query.get("includeObject", "Metadata"),
                                              list_meta={"resourceVersion": obj["metadata"]["resourceVersion"]}))
        # the object's wire bytes (often the watch cache's, without a decode and encode)
        return web.Response(body=await store.get_encoded(ns, name, resource_version=request.query.get(
            "resourceVersion")), content_type=JSON)
    if method == "PUT":
        return await update(server, request, store, ns, name, None)
    if method == "PATCH":
        return await server.patch(request, store, ns, name, None)
    if method == "DELETE":
        return await delete(request, store, ns, name)
    raise errors.method_not_allowed("the server does not allow this method on the requested resource")


async def list_(request: web.Request, store: RESTStore, ns: str | None) -> web.Response:
    q = request.query
    pred = store.predicate(q.get("labelSelector"), q.get("fieldSelector"))
    try:
        limit = int(q.get("limit") or 0)
    except ValueError:
        raise errors.bad_request(f"invalid limit: {q.get('limit')!r}") from None
    if not wants_table(request) and not q.get("continue"):
        raw = await store.list_encoded(ns, pred=pred, resource_version=q.get("resourceVersion"),
                                       limit=max(limit, 0))
        if raw is not None:  # served from the watch cache's bytes
            return web.Response(body=raw, content_type=JSON)
    lst = await store.list(ns, pred=pred, limit=max(limit, 0), continue_=q.get("continue") or None,
                           resource_version=q.get("resourceVersion"))
    if wants_table(request):
        info = store.info
        return json_response(tables.table(tables.printer_for(info.group, info.kind), lst["items"],
                                          include_object=q.get("includeObject", "Metadata"),
                                          list_meta=lst["metadata"]))
    return json_response(lst)


async def update(server: "APIServer", request: web.Request, store: RESTStore, ns: str | None, name: str,
                 sub: str | None) -> web.Response:
    raw, ctype = await read_raw(request), body_type(request)
    body = decode_object(raw, ctype, store.info.kind)
    if not isinstance(body, dict):
        raise errors.bad_request(f"the object provided is not a valid {store.info.kind}")
    warnings: list[str] = []
    first = [body]

    def make(cur: Any) -> Any:
        # the update loop changes what make() returns (resourceVersion, system fields):
        # a retry after a lost race needs the body as sent, so it is decoded again
        return first.pop() if first else decode_body(raw, ctype)

    obj, created, wire = await store.update_wire(ns, name, make, subresource=sub,
                                                 dry_run=dry_run(request),
                                                 field_validation=field_validation(request), warnings=warnings)
    return object_response(obj, wire, 201 if created else 200, warnings=warnings)


def _int_param(q: Any, key: str) -> int:
    try:
        return int(q[key])
    except ValueError:
        raise errors.bad_request(f"invalid {key}: {q[key]!r}") from None


async def delete_options(request: web.Request) -> dict[str, Any]:
    """DeleteOptions from the body and the query (the query wins), type-checked
    so that a malformed option is a 400 and never reaches the store."""
    options: dict[str, Any] = {}
    if request.can_read_body:
        raw = await read_raw(request)
        if raw.strip():
            options = decode_body(raw, (request.headers.get("Content-Type") or JSON).split(";")[0])
            if not isinstance(options, dict):
                raise errors.bad_request("DeleteOptions must be an object")
    q = request.query
    if "gracePeriodSeconds" in q:
        options["gracePeriodSeconds"] = _int_param(q, "gracePeriodSeconds")
    if "propagationPolicy" in q:
        options["propagationPolicy"] = q["propagationPolicy"]
    if "orphanDependents" in q:
        options["orphanDependents"] = q["orphanDependents"] == "true"
    pol = options.get("propagationPolicy")
    if pol not in (None, "Orphan", "Background", "Foreground"):
        raise errors.bad_request(f'propagationPolicy: Unsupported value: "{pol}": supported values: '
                                 '"Foreground", "Background", "Orphan", "nil"')
    grace = options.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise errors.bad_request("gracePeriodSeconds: must be an integer")
    pre = options.get("preconditions")
    if pre is not None and (not isinstance(pre, dict) or
                            any(not isinstance(pre.get(k), (str, type(None))) for k in ("uid", "resourceVersion"))):
        raise errors.bad_request("preconditions: must be an object with string uid and resourceVersion")
    if not isinstance(options.get("orphanDependents", False), (bool, type(None))):
        raise errors.bad_request("orphanDependents: must be a boolean")
    return options


def _gc_warnings(store: RESTStore, options: dict[str, Any]) -> list[str]:
    warning = store.strategy.default_gc_warning  # type: ignore[union-attr]
    if warning and options.get("propagationPolicy") is None and options.get("orphanDependents") is None:
        return [warning]
    return []


async def delete(request: web.Request, store: RESTStore, ns: str | None, name: str) -> web.Response:
    why = store.strategy.undeletable.get(name)  # type: ignore[union-attr]
    if why:  # before the object is read, as upstream's NamespaceLifecycle admission and priorityclass REST
        raise errors.forbidden_object(store.info.group, store.info.plural, name, why)
    options = await delete_options(request)
    warnings = _gc_warnings(store, options)
    obj, deleted_now = await store.delete(ns, name, options, dry_run=dry_run(request, options), warnings=warnings)
    if deleted_now and not store.strategy.return_deleted_object:  # type: ignore[union-attr]
        # upstream's finalizeDelete: most kinds answer a finished delete with a Success Status
        m = obj["metadata"]
        details = {"name": m.get("name"), "kind": store.info.plural, "uid": m.get("uid")}
        if store.info.group:
            details["group"] = store.info.group
        obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
               "details": errors.ordered_details(details)}
    return json_response(obj, 200, warnings=warnings)


async def delete_collection(request: web.Request, store: RESTStore, ns: str | None) -> web.Response:
    q = request.query
    pred = store.predicate(q.get("labelSelector"), q.get("fieldSelector"))
    options = await delete_options(request)
    lst = await store.list(ns, pred=pred)
    warnings = _gc_warnings(store, options)
    items = []
    for o in lst["items"]:
        try:
            obj, _ = await store.delete(o["metadata"].get("namespace"), o["metadata"]["name"], options,
                                        dry_run=dry_run(request, options), warnings=warnings)
            items.append(obj)
        except errors.StatusError as e:
            if e.code != 404:
                raise
    lst["items"] = items
    return json_response(lst, warnings=warnings)


async def watch(server: "APIServer", request: web.Request, store: RESTStore, ns: str | None, *,
                name: str | None = None) -> web.StreamResponse:
    q = request.query
    fs = q.get("fieldSelector")
    if name:
        fs = f"metadata.name={name}" + (f",{fs}" if fs else "")
    pred = store.predicate(q.get("labelSelector"), fs)
    as_table = wants_table(request)
    printer = tables.printer_for(store.info.group, store.info.kind)
    bookmarks = query_bool(request, "allowWatchBookmarks")
    try:
        timeout = float(q.get("timeoutSeconds") or 1800)
    except ValueError:
        raise errors.bad_request("invalid timeoutSeconds") from None
    rv = q.get("resourceVersion")
    resp = web.StreamResponse(status=200, headers={"Content-Type": JSON, "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    try:
        watcher = await store.watch(ns, pred=pred, resource_version=rv)
    except errors.StatusError as e:
        if e.code != 410:
            raise
        # a too-old resourceVersion is an ERROR event in a 200 stream, as kube-apiserver's cacher sends
        await resp.prepare(request)
        await resp.write(orjson.dumps({"type": "ERROR", "object": e.status()}) + b"\n")
        await resp.write_eof()
        return resp
    writer = await resp.prepare(request)
    if not as_table and watcher.view is None:
        # events as the cache's bytes: the cache writes each one, already framed as a
        # chunk, straight to the connection (see watchcache's module doc), so one
        # change reaches a thousand watchers without waking a thousand coroutines
        writer.send_headers()  # aiohttp holds them back for the first body write
        watcher.sink = _direct_sink(request.protocol)
    deadline = time.monotonic() + timeout
    server.metrics_watchers(store.info, +1)
    live = server.metrics.watch_started(store.info, watcher)
    first_columns = True
    include = q.get("includeObject", "Metadata")
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            batch = await watcher.next_batch(min(remaining, BOOKMARK_INTERVAL))
            server.metrics.watch_counted(live)
            if batch is None:  # dropped as too slow, or the cache restarted: the client re-watches
                break
            if isinstance(batch, str):  # idle: a bookmark carries the cache's progress
                transport = request.transport
                if transport is None or transport.is_closing():
                    break  # the client went away (aiohttp does not cancel the handler): end the watch
                if bookmarks and batch != "0":
                    bm = {"type": "BOOKMARK", "object": {"kind": store.info.kind,
                                                         "apiVersion": store.info.api_version,
                                                         "metadata": {"resourceVersion": batch}}}
                    await resp.write(orjson.dumps(bm) + b"\n")
                continue
            if as_table:
                chunks = []
                for typ, entry in batch:
                    obj = tables.table(printer, [entry.decode()], include_object=include,
                                       list_meta={"resourceVersion": str(entry.rv)}, with_columns=first_columns)
                    first_columns = False
                    chunks.append(orjson.dumps({"type": typ, "object": obj}) + b"\n")
            else:  # the cache's bytes as they are: one encode per change, however many watchers
                chunks = [entry.line(typ) for typ, entry in batch]
            if not chunks:  # events went to the sink while waiting: not idle
                continue
            server.metrics_watch_events(store.info, len(chunks))
            await resp.write(b"".join(chunks))  # one write (and TLS record) per batch
            # the sink's writes bypass resp.write's own count, so wait for the buffer
            # here: while it drains, events queue, and WATCHER_BUFFER of them drop the watcher
            await writer.drain()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        watcher.close()
        server.metrics.watch_ended(live)
        server.metrics_watchers(store.info, -1)
    try:
        await resp.write_eof()
    except (ConnectionResetError, RuntimeError):
        pass
    return resp


def _direct_sink(protocol: Any) -> Any:
    """A watcher's sink: bytes straight to the connection's transport, refused
    (False) while the transport asks its writer to pause or is closing, so the
    handler's drain-and-drop rules apply then."""
    def sink(data: bytes) -> bool:
        tr = protocol.transport
        if tr is None or protocol.writing_paused or tr.is_closing():
            return False
        tr.write(data)
        return True
    return sink
