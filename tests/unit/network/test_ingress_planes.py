"""Both ingress data planes (real nginx, and the built-in proxy) serve the same
routing table the same way: SNI certificates, 308 redirects, 404/503, proxying.
No cluster: a routing Model is built from dicts and upstreams are local aiohttp
servers."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from test_ingress_routes import backend, ing, rule, sources, svc, tls_secret

from kybern.network import ingress_routes as routes
from kybern.network.ingress_builtin import BuiltinPlane
from kybern.network.ingress_certs import self_signed
from kybern.network.ingress_nginx import NginxPlane, PlaneError, find_nginx

DEFAULT = self_signed("Kubernetes Ingress Controller Fake Certificate")
A_CERT = self_signed("a.test", ["a.test"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def upstream(name: str) -> tuple[web.AppRunner, int]:
    async def hello(request: web.Request) -> web.Response:
        if request.path == "/request-id":
            return web.Response(text=request.headers.get("X-Request-ID", ""))
        return web.Response(text=f"{name} {request.path} {request.headers.get('X-Forwarded-Proto')}")

    app = web.Application()
    app.router.add_route("*", "/{t:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def model(port_a: int, port_b: int) -> routes.Model:
    s_a = svc("a", ports=[{"port": 80, "targetPort": port_a}])
    s_b = svc("b", ports=[{"port": 80, "targetPort": port_b}])
    pods = [{"metadata": {"name": n, "namespace": "default", "labels": {"app": n}},
             "status": {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}}
            for n in ("a", "b")]
    ingresses = [ing("x", [rule("a.test", ("/", "Prefix", "a"), ("/b", "Exact", "b"), ("/gone", "Prefix", "zz"))],
                     tls=[{"hosts": ["a.test"], "secretName": "a-tls"}]),
                 ing("y", [rule("plain.test", ("/", "Prefix", "b"))], default=backend("b"))]
    return routes.build(sources(ingresses, [s_a, s_b], pods, secrets={"default/a-tls": tls_secret(*A_CERT)}),
                        DEFAULT)


async def fetch(url: str, host: str, *, sni: str | None = None) -> tuple[int, str, str, str]:
    """(status, body, Location header, certificate CN) of one request."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    conn = aiohttp.TCPConnector(ssl=ctx if url.startswith("https") else False, force_close=True)
    async with aiohttp.ClientSession(connector=conn) as s:
        kw = {"server_hostname": sni} if sni else {}
        async with s.get(url, headers={"Host": host}, allow_redirects=False, **kw) as r:
            status, body, location = r.status, await r.text(), r.headers.get("Location", "")
    cn = ""
    if url.startswith("https"):
        port = int(url.split(":")[2].split("/")[0])
        _, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni or "")
        der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
        cn = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        w.close()
    return status, body, location, cn


PLANES = ["builtin", pytest.param("nginx", marks=pytest.mark.skipif(not find_nginx(), reason="nginx not installed"))]


@pytest.mark.parametrize("kind", PLANES)
async def test_plane_routes_tls_and_redirects(kind: str, tmp_path: Path) -> None:
    (ra, pa), (rb, pb) = await upstream("A"), await upstream("B")
    http, https = free_port(), free_port()
    plane = NginxPlane(tmp_path, http_port=http, https_port=https, address="127.0.0.1") if kind == "nginx" \
        else BuiltinPlane(http_port=http, https_port=https, address="127.0.0.1")
    try:
        await plane.apply(model(pa, pb))
        base = f"https://127.0.0.1:{https}"
        st, body, _, cn = await fetch(f"{base}/x/y?q=1", "a.test", sni="a.test")
        assert (st, body, cn) == (200, "A /x/y https", "CN=a.test,O=Acme Co")
        assert (await fetch(f"{base}/b", "a.test", sni="a.test"))[:2] == (200, "B /b https")
        assert (await fetch(f"{base}/b/c", "a.test", sni="a.test"))[1].startswith("A ")  # Exact only
        assert (await fetch(f"{base}/gone/1", "a.test", sni="a.test"))[0] == 503
        st, _, loc, _ = await fetch(f"http://127.0.0.1:{http}/p?q=1", "a.test")
        assert (st, loc) == (308, f"https://a.test:{https}/p?q=1")
        assert (await fetch(f"http://127.0.0.1:{http}/z", "plain.test"))[:2] == (200, "B /z http")
        st, body, _, cn = await fetch(f"{base}/", "unknown.test", sni="unknown.test")
        assert (st, cn) == (200, "CN=Kubernetes Ingress Controller Fake Certificate,O=Acme Co")  # defaultBackend
        assert body.startswith("B ")
        # X-Request-ID: the client's is passed on, else a fresh random one per request
        st, body, _, _ = await fetch(f"{base}/request-id", "a.test", sni="a.test")
        st2, body2, _, _ = await fetch(f"{base}/request-id", "a.test", sni="a.test")
        assert (st, st2) == (200, 200) and re.fullmatch("[0-9a-f]{32}", body) and body != body2
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        async with aiohttp.ClientSession() as s, s.get(f"{base}/request-id", ssl=ctx, headers={
                "Host": "a.test", "X-Request-ID": "trace-42"}) as r:
            assert await r.text() == "trace-42"
    finally:
        await plane.stop()
        await ra.cleanup()
        await rb.cleanup()


@pytest.mark.skipif(not find_nginx(), reason="nginx not installed")
async def test_nginx_keeps_running_config_when_new_one_is_rejected(tmp_path: Path) -> None:
    (ra, pa), (rb, pb) = await upstream("A"), await upstream("B")
    http, https = free_port(), free_port()
    plane = NginxPlane(tmp_path, http_port=http, https_port=https, address="127.0.0.1")
    try:
        good = model(pa, pb)
        await plane.apply(good)
        before = plane.conf.read_text()
        bad = model(pa, pb)
        bad.certs["default-a-tls"] = (A_CERT[0], DEFAULT[1])  # key does not match: nginx -t fails
        with pytest.raises(PlaneError, match="rejected"):
            await plane.apply(bad)
        assert plane.conf.read_text() == before
        await asyncio.sleep(0.1)
        assert (await fetch(f"https://127.0.0.1:{https}/", "a.test", sni="a.test"))[:2] == (200, "A / https")
    finally:
        await plane.stop()
        await ra.cleanup()
        await rb.cleanup()
