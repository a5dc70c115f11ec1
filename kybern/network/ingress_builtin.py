"""The built-in data plane, used when nginx is not installed: an asyncio (aiohttp)
reverse proxy serving the same routing Model as the nginx plane — host and path
matching, 503 for backends without endpoints, 404 by default, HTTP → HTTPS 308
redirects, and TLS with SNI (one ssl context per certificate, chosen in the
handshake by `sni_callback`).

Limits compared with the nginx plane: no WebSocket/Upgrade pass-through, no
HTTP/2, responses are streamed but requests are read whole (1 MiB limit, as
nginx's client_max_body_size default), upstream connections are pooled per
event loop.
"""

from __future__ import annotations

import itertools
import logging
import ssl
import tempfile
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

from kybern.network.ingress_nginx import PlaneError
from kybern.network.ingress_routes import DEFAULT_CERT, Model

log = logging.getLogger(__name__)

# hop-by-hop headers (RFC 9110 §7.6.1) are never forwarded
HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
       "transfer-encoding", "upgrade", "content-length"}


def _context(crt: bytes, key: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # ssl loads chains from files only: write to a private temp dir, load, delete
    with tempfile.TemporaryDirectory() as d:
        c, k = Path(d) / "c.pem", Path(d) / "k.pem"
        c.write_bytes(crt)
        k.write_bytes(key)
        ctx.load_cert_chain(str(c), str(k))
    return ctx


class BuiltinPlane:
    """An HTTP and an HTTPS listener in this process, reconfigured by `apply`."""

    def __init__(self, *, http_port: int, https_port: int, address: str = "") -> None:
        self.http_port, self.https_port = http_port, https_port
        self.address = address or "0.0.0.0"
        self.model = Model()
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._pairs: dict[str, tuple[bytes, bytes]] = {}
        self._rr = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def apply(self, model: Model) -> None:
        contexts = {}
        for cid, pair in model.certs.items():
            if self._pairs.get(cid) == pair and cid in self._contexts:
                contexts[cid] = self._contexts[cid]
            else:
                contexts[cid] = _context(*pair)  # raises on a bad pair: the old model stays
        self._contexts, self._pairs = contexts, dict(model.certs)
        self.model = model  # one assignment: requests see the old or the new model, never a mix
        if self._runner is None:
            await self._start()

    async def _start(self) -> None:
        app = web.Application(client_max_size=1024 ** 2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        tls = _context(*self._pairs[DEFAULT_CERT])  # answers clients that send no SNI
        tls.sni_callback = self._sni
        try:
            await web.TCPSite(runner, self.address, self.http_port, reuse_address=True).start()
            await web.TCPSite(runner, self.address, self.https_port, ssl_context=tls, reuse_address=True).start()
        except OSError as e:
            await runner.cleanup()
            raise PlaneError(f"built-in ingress proxy cannot listen on {self.http_port}/{self.https_port}: "
                             f"{e.strerror}") from None
        self._runner = runner
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=320),
            timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=60), auto_decompress=False)

    def _sni(self, sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        srv = self.model.server_for(name or "")
        ctx = self._contexts.get(srv.cert or DEFAULT_CERT)
        if ctx is not None:
            sock.context = ctx

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = self._session = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        model = self.model
        host = (request.host or "").rsplit(":", 1)[0] if not (request.host or "").endswith("]") else request.host
        srv = model.server_for(host)
        if srv.redirect and not request.secure:
            port = "" if self.https_port == 443 else f":{self.https_port}"
            raise web.HTTPPermanentRedirect(f"https://{host}{port}{request.path_qs}")
        loc = srv.match(request.path)
        if loc is None:
            return web.Response(status=404, text="404 Not Found\n")
        eps = model.upstreams.get(loc.upstream) if loc.upstream else None
        if not eps:
            return web.Response(status=503, text="503 Service Temporarily Unavailable\n")
        return await self._forward(request, eps, host)

    async def _forward(self, request: web.Request, eps: list[tuple[str, int]], host: str) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        proto = "https" if request.secure else "http"
        peer = request.remote or ""
        prior = request.headers.get("X-Forwarded-For")
        headers.update({"Host": request.host, "X-Real-IP": peer, "X-Forwarded-Host": host,
                        "X-Request-ID": request.headers.get("X-Request-ID") or uuid.uuid4().hex,
                        "X-Forwarded-For": f"{prior}, {peer}" if prior else peer,
                        "X-Forwarded-Port": str(self.https_port if request.secure else self.http_port),
                        "X-Forwarded-Proto": proto, "X-Scheme": proto})
        body = await request.read()
        start = next(self._rr)
        last: Exception | None = None
        resp: web.StreamResponse | None = None
        for i in range(min(3, len(eps))):  # as proxy_next_upstream error: try the next endpoint
            ip, port = eps[(start + i) % len(eps)]
            hostport = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
            try:
                async with self._session.request(request.method, f"http://{hostport}{request.raw_path}",
                                                 headers=headers, data=body, allow_redirects=False) as up:
                    resp = web.StreamResponse(status=up.status, reason=up.reason)
                    for k, v in up.headers.items():
                        if k.lower() not in HOP:
                            resp.headers.add(k, v)
                    await resp.prepare(request)
                    async for chunk in up.content.iter_any():
                        await resp.write(chunk)
                    await resp.write_eof()
                    return resp
            except (TimeoutError, aiohttp.ClientConnectionError) as e:
                if resp is not None and resp.prepared:
                    raise  # the answer had started: the client sees a cut response, as with nginx
                last = e
        log.debug("ingress upstream failed: %r", last)
        return web.Response(status=502, text="502 Bad Gateway\n")

