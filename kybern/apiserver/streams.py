"""pods/exec, pods/attach and pods/portforward: the apiserver's side of
`kubectl exec`, `attach`, `cp` and `port-forward`.

As upstream's ExecREST/AttachREST/PortForwardREST, the apiserver checks the
pod and container, finds the node agent (its InternalIP and kubelet port) and
proxies the upgrade request there, over TLS with the apiserver's kubelet client certificate. Once the
agent answers `101 Switching Protocols` the two connections are spliced byte
for byte, so every protocol the agent speaks (WebSocket v5/v4 channels, SPDY/3.1,
SPDY tunnelled in a WebSocket) passes unchanged. A refusal from the agent (a
container that is not running, say) is passed through as it is; kubectl shows
it as "unable to upgrade connection: ...".
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from kybern.apiserver.store import RESTStore
from kybern.machinery import errors
from kybern.machinery.upgrade import RawConn, hijacked

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

# request headers the agent needs to complete the upgrade
FORWARDED = ("Connection", "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
             "X-Stream-Protocol-Version")
MAX_HEAD = 64 * 1024


async def exec_(server: APIServer, request: web.Request, store: RESTStore, ns: str | None,
                name: str) -> web.StreamResponse:
    return await _proxy(server, request, store, ns, name, "exec")


async def attach(server: APIServer, request: web.Request, store: RESTStore, ns: str | None,
                 name: str) -> web.StreamResponse:
    return await _proxy(server, request, store, ns, name, "attach")


async def portforward(server: APIServer, request: web.Request, store: RESTStore, ns: str | None,
                      name: str) -> web.StreamResponse:
    return await _proxy(server, request, store, ns, name, "portforward")


def _container(pod: dict, name: str, wanted: str | None) -> str:
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    eph = [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not wanted:
        if len(names) == 1:
            return names[0]
        raise errors.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                 f"[{' '.join(names)}]" +
                                 (f" or one of the init containers: [{' '.join(inits)}]" if inits else ""))
    if wanted not in names + inits + eph:
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


async def _proxy(server: APIServer, request: web.Request, store: RESTStore, ns: str | None, name: str,
                 kind: str) -> web.StreamResponse:
    if request.method not in ("GET", "POST"):
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    await server.webhooks.connect(request, store, ns, name, kind)  # CONNECT admission (admission_webhooks.py)
    pod = await store.get(ns, name)
    query = [(k, v) for k, v in request.query.items() if k != "container"]
    if kind == "portforward":
        path = f"/portforward/{ns}/{name}"
    else:
        if not request.query.getall("command", []) and kind == "exec":
            raise errors.bad_request("you must specify at least one command for the container")
        container = _container(pod, name, request.query.get("container"))
        path = f"/{kind}/{ns}/{name}/{container}"
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and kind != "portforward":
        raise errors.bad_request(f"cannot {kind} into a container in a completed pod; current phase is "
                                 f"{pod['status']['phase']}")
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    if "upgrade" not in request.headers.get("Connection", "").lower():
        raise errors.bad_request("Upgrade request required")
    url = urlsplit(await server.node_url(node))
    host, port = url.hostname or "127.0.0.1", url.port or 443
    try:
        up_r, up_w = await asyncio.open_connection(host, port, ssl=server.node_tls())
    except OSError as e:
        raise errors.StatusError(500, "InternalError", f"error dialing backend: {e}") from None
    target = path + (f"?{urlencode(query)}" if query else "")
    lines = [f"{request.method} {target} HTTP/1.1", f"Host: {url.netloc}"]
    for h in FORWARDED:
        lines += [f"{h}: {v}" for v in request.headers.getall(h, [])]
    lines += [f"{k}: {v}" for k, v in server.node_headers().items()]
    up_w.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    try:
        head = await up_r.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as e:
        up_w.close()
        raise errors.StatusError(500, "InternalError", f"error reading from backend: {e!r}") from None
    status_line, _, rest = head.decode("latin-1").partition("\r\n")
    code = int(status_line.split()[1])
    if code != 101:
        return await _refusal(code, rest, up_r, up_w)
    client = RawConn.take(request)
    client.write(head)
    await _splice(client, up_r, up_w)
    return hijacked()


async def _refusal(code: int, head: str, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> web.Response:
    headers = dict(line.split(": ", 1) for line in head.strip().split("\r\n") if ": " in line)
    length = int({k.lower(): v for k, v in headers.items()}.get("content-length", "0") or 0)
    try:
        body = await asyncio.wait_for(r.readexactly(min(length, MAX_HEAD)), 10) if length else b""
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        body = b""
    w.close()
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "text/plain").split(";")[0]
    return web.Response(status=code, body=body, content_type=ctype)


async def _splice(client: RawConn, up_r: asyncio.StreamReader, up_w: asyncio.StreamWriter) -> None:
    async def to_node() -> None:
        while data := await client.read():
            up_w.write(data)
            await up_w.drain()

    async def to_client() -> None:
        while data := await up_r.read(65536):
            client.write(data)
            await client.drain()

    tasks = {asyncio.ensure_future(to_node()), asyncio.ensure_future(to_client())}
    try:
        # either side closing ends the session (the protocols inside end with their own
        # close: WebSocket close frame, SPDY GOAWAY, so nothing is cut short)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            up_w.close()
        client.close()
