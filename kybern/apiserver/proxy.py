"""The `proxy` subresources, as kube-apiserver serves them:

  nodes/NAME[:PORT]/proxy/PATH                 the node agent's own API (the kubelet's:
                                               /stats/summary, /metrics, /metrics/resource,
                                               /healthz, /pods), with the apiserver's credentials
  namespaces/NS/pods/[SCHEME:]NAME[:PORT]/proxy/PATH       the pod's IP, PORT (80 unless given)
  namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH   a ready endpoint of the Service's
                                               port PORT (a name or a number; the only port when
                                               the Service has one)

So `kubectl get --raw /api/v1/nodes/N/proxy/stats/summary` and `kubectl proxy`'s
`/api/v1/namespaces/default/services/web:80/proxy/` work as upstream. The request's
method, query, body and headers go through (not its credentials, nor hop-by-hop
headers); the answer comes back as the target gave it, streamed. A bare `.../proxy`
GET is redirected to `.../proxy/`, as upstream. A target that cannot be reached is a
503 "error trying to reach service: ...", upstream's wording.

Not done: the HTML link rewriting upstream applies to proxied pages, WebSocket or
other upgraded connections through the proxy.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from kybern.machinery import errors

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer
    from kybern.apiserver.store import RESTStore

# hop-by-hop headers (RFC 7230 6.1) and what the apiserver sets itself
_DROP_REQUEST = {"authorization", "host", "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                 "te", "trailer", "transfer-encoding", "upgrade", "content-length", "impersonate-user",
                 "impersonate-group"}
_DROP_RESPONSE = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                  "transfer-encoding", "upgrade", "content-length", "content-encoding"}


def _split(name: str) -> tuple[str, str, str]:
    """`[scheme:]name[:port]` -> (scheme, name, port) as upstream's SplitSchemeNamePort."""
    parts = name.split(":")
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:
        return "", parts[0], parts[1]
    if len(parts) == 3 and parts[0] in ("http", "https"):
        return parts[0], parts[1], parts[2]
    raise errors.bad_request(f"invalid resource name {name!r}")


def _rest(request: web.Request, name: str) -> str:
    """The path after `NAME/proxy` ('' when there is none), escaped as it came."""
    raw = request.raw_path.split("?", 1)[0]
    marker = f"/{name}/proxy"
    i = raw.find(marker)
    return raw[i + len(marker):] if i >= 0 else ""


async def _forward(request: web.Request, target: str, extra_headers: dict[str, str] | None = None,
                   session: aiohttp.ClientSession | None = None) -> web.StreamResponse:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
    headers.update(extra_headers or {})
    body = await request.read() if request.can_read_body else None
    own = session is None
    session = session or aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
    try:
        async with session.request(request.method, target, params=request.query, data=body, headers=headers,
                                   allow_redirects=False, auto_decompress=False,
                                   timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as up:
            resp = web.StreamResponse(status=up.status, reason=up.reason)
            for k, v in up.headers.items():
                if k.lower() not in _DROP_RESPONSE:
                    resp.headers.add(k, v)
            if "Content-Encoding" in up.headers:  # passed through as it came (auto_decompress off)
                resp.headers["Content-Encoding"] = up.headers["Content-Encoding"]
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp
    except (aiohttp.ClientError, OSError) as e:
        raise errors.StatusError(503, "ServiceUnavailable", f"error trying to reach service: {e}") from None
    finally:
        if own:
            await session.close()


async def _object(request: web.Request, store: RESTStore, ns: str | None,
                  name: str) -> tuple[str, str, str, str, dict[str, Any]]:
    """(scheme, name, port, path after .../proxy, the object) of a pod or Service
    proxy request; a bare `.../proxy` GET is redirected to `.../proxy/`, as upstream."""
    scheme, obj_name, port = _split(name)
    rest = _rest(request, name)
    if not rest and request.method == "GET":
        loc = request.raw_path.split("?", 1)[0] + "/"
        if request.query_string:
            loc += "?" + request.query_string
        raise web.HTTPMovedPermanently(loc)
    return scheme, obj_name, port, rest, await store.get(ns, obj_name)


async def node(server: APIServer, request: web.Request, store: RESTStore, ns: str | None,
               name: str) -> web.StreamResponse:
    scheme, node_name, port = _split(name)
    rest = _rest(request, name)
    url = await server.node_url(node_name)
    if port:
        url = url.rsplit(":", 1)[0] + ":" + port
    if scheme:
        url = scheme + url[url.index(":"):]
    return await _forward(request, url + (rest or "/"), server.node_headers(), server.node_session())


async def pod(server: APIServer, request: web.Request, store: RESTStore, ns: str | None,
              name: str) -> web.StreamResponse:
    scheme, pod_name, port, rest, p = await _object(request, store, ns, name)
    ip = (p.get("status") or {}).get("podIP")
    if not ip:
        raise errors.bad_request(f"address not allowed: pod {pod_name} has no IP yet")
    return await _forward(request, f"{scheme or 'http'}://{_host(ip)}{':' + port if port else ''}{rest or '/'}")


async def service(server: APIServer, request: web.Request, store: RESTStore, ns: str | None,
                  name: str) -> web.StreamResponse:
    scheme, svc_name, port, rest, svc = await _object(request, store, ns, name)
    ports = (svc.get("spec") or {}).get("ports") or []
    if port:
        sp = next((p for p in ports if p.get("name") == port or str(p.get("port")) == port), None)
        if sp is None:
            raise errors.StatusError(503, "ServiceUnavailable",
                                     f'no service port "{port}" found for service "{svc_name}"')
    elif len(ports) == 1:
        sp = ports[0]
    else:
        raise errors.StatusError(503, "ServiceUnavailable", f'no service port "" found for service "{svc_name}"')
    ep = await _endpoints(server, ns, svc_name)
    addr = _pick(ep, sp.get("name") or "")
    if addr is None:
        raise errors.StatusError(503, "ServiceUnavailable", f'no endpoints available for service "{svc_name}"')
    ip, target_port = addr
    return await _forward(request, f"{scheme or 'http'}://{_host(ip)}:{target_port}{rest or '/'}")


async def _endpoints(server: APIServer, ns: str | None, name: str) -> dict[str, Any]:
    try:
        return await server.store("", "v1", "endpoints").get(ns, name)
    except errors.StatusError as e:
        if e.code == 404:
            return {}
        raise


def _pick(ep: dict[str, Any], port_name: str) -> tuple[str, int] | None:
    """A random ready address of the Endpoints subsets that carry the port named `port_name`."""
    found = []
    for subset in ep.get("subsets") or []:
        port = next((p["port"] for p in subset.get("ports") or [] if (p.get("name") or "") == port_name), None)
        if port is None:
            continue
        found += [(a["ip"], port) for a in subset.get("addresses") or [] if a.get("ip")]
    return random.choice(found) if found else None


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


__all__ = ["node", "pod", "service"]
