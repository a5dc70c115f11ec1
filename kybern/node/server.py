"""The node agent's HTTPS server, the kubelet's port 10250 in miniature.

    GET /healthz                                   "ok"
    GET /pods                                      the pods this node runs (PodList)
    GET /containerLogs/{namespace}/{pod}/{container}
        ?follow&previous&tailLines&sinceSeconds&sinceTime&timestamps&limitBytes
    GET|POST /exec/{namespace}/{pod}/{container}   exec, upgraded (see streams.py)
    GET|POST /attach/{namespace}/{pod}/{container} attach, upgraded (see streams.py)
    GET|POST /portforward/{namespace}/{pod}        port-forward, upgraded (see portforward.py)
    GET /stats/summary                             CPU/memory of the node and pods (Summary API, stats.py)
    GET /metrics/resource                          the same as Prometheus counters (kubelet metric names)

The apiserver proxies `kubectl logs` here (finding us through the Node's
InternalIP address and daemonEndpoints.kubeletEndpoint.Port) with its kubelet client
certificate; every caller (certificate or bearer token) is checked as the kubelet's
x509 and webhook authentication and webhook authorization do (apiauth.py). Errors are plain text with the kubelet's wording and status code
(400 for a container that cannot have logs yet, 404 for an unknown pod).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
import psutil
from aiohttp import web

from kybern.node import portforward, serving_cert, stats, streams
from kybern.node.apiauth import WebhookAuth
from kybern.node.configz import kubelet_config
from kybern.node.logs import LogOptions, parse_rfc3339, stream_log
from kybern.node.pod_worker import LogTargetError

if TYPE_CHECKING:
    from kybern.node.agent import NodeAgent

log = logging.getLogger(__name__)


def make_app(agent: NodeAgent) -> web.Application:
    webhook = WebhookAuth(lambda: agent.client, agent.name)

    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if agent.token and request.path != "/healthz":
            # the kubelet's authentication (a client certificate from the cluster CA, else a
            # bearer token through a TokenReview) and webhook authorization (apiauth.py); the
            # apiserver comes with its kube-apiserver-kubelet-client certificate
            transport = request.transport
            user = serving_cert.peer_user(transport.get_extra_info("ssl_object") if transport else None)
            got = request.headers.get("Authorization", "")
            token = got[7:].strip() if got.startswith("Bearer ") else ""
            try:
                if user is None:
                    user = await webhook.user(token) if token else None
                if user is None:
                    return web.Response(status=401, text="Unauthorized\n")
                ok, verb, sub = await webhook.allowed(user, request.method, request.path)
            except Exception as e:  # noqa: BLE001 - the API unreachable: refuse, as the kubelet does
                log.warning("node API: cannot check a caller with the API: %r", e)
                return web.Response(status=401, text="Unauthorized\n")
            if not ok:
                return web.Response(status=403, text=f"Forbidden (user={user.get('username', '')}, verb={verb}, "
                                                     f"resource=nodes, subresource={sub})\n")
        return await handler(request)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def pods(request: web.Request) -> web.Response:
        items = [w.pod for w in agent.workers.values() if w.pod is not None]
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def container_logs(request: web.Request) -> web.StreamResponse:
        ns = request.match_info["namespace"]
        pod = request.match_info["pod"]
        container = request.match_info["container"]
        q = request.query
        try:
            opts = _options(q)
        except ValueError as e:
            return web.Response(status=400, text=f"{e}\n")
        worker = agent.worker_for(ns, pod)
        if worker is None:
            return web.Response(status=404, text=f'pod "{ns}/{pod}" does not exist\n')
        try:
            path, finished = worker.log_target(container, _flag(q.get("previous")))
        except LogTargetError as e:
            return web.Response(status=e.code, text=f"{e.message}\n")
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        if opts.follow:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            async for chunk in stream_log(path, opts, finished):
                await resp.write(chunk)
        except (ConnectionResetError, ConnectionError):
            return resp  # the client went away while following
        await resp.write_eof()
        return resp

    collector = stats.StatsCollector(agent)  # samples every KYBERN_STATS_INTERVAL (10 s)
    boot_time = psutil.boot_time()

    async def stats_summary(request: web.Request) -> web.Response:
        snap = collector.snapshot or await collector.sample()
        body = stats.summary(snap, agent.name, boot_time)
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def metrics_resource(request: web.Request) -> web.Response:
        snap = collector.snapshot or await collector.sample()
        return web.Response(text=stats.prometheus(snap), content_type="text/plain",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def kubelet_metrics(request: web.Request) -> web.Response:
        return web.Response(text=await agent.metrics.render(agent), content_type="text/plain",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def configz(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(kubelet_config(agent)), content_type="application/json")

    async def start_stats(app: web.Application) -> None:
        collector.start()

    async def stop_stats(app: web.Application) -> None:
        await collector.stop()

    app = web.Application(middlewares=[auth])
    app.on_startup.append(start_stats)
    app.on_cleanup.append(stop_stats)
    app.router.add_get("/stats/summary", stats_summary)
    app.router.add_get("/metrics/resource", metrics_resource)
    app.router.add_get("/metrics", kubelet_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/configz", configz)
    app.router.add_get("/pods", pods)
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    for method in ("GET", "POST"):
        app.router.add_route(method, "/exec/{namespace}/{pod}/{container}",
                             lambda r: streams.serve_exec(agent, r))
        app.router.add_route(method, "/attach/{namespace}/{pod}/{container}",
                             lambda r: streams.serve_attach(agent, r))
        app.router.add_route(method, "/portforward/{namespace}/{pod}",
                             lambda r: portforward.serve_portforward(agent, r))
    return app


def _flag(v: str | None) -> bool:
    return (v or "").lower() in ("true", "1", "yes")


def _options(q: Any) -> LogOptions:
    def num(name: str) -> int | None:
        v = q.get(name)
        if v in (None, ""):
            return None
        try:
            return int(v)
        except ValueError:
            raise ValueError(f"invalid {name}: {v!r}") from None

    since = None
    if (s := num("sinceSeconds")) is not None:
        since = time.time() - s
    elif q.get("sinceTime"):
        try:
            since = parse_rfc3339(q["sinceTime"])
        except ValueError:
            raise ValueError(f"invalid sinceTime: {q['sinceTime']!r}") from None
    return LogOptions(tail_lines=num("tailLines"), since_time=since, timestamps=_flag(q.get("timestamps")),
                      limit_bytes=num("limitBytes"), follow=_flag(q.get("follow")))


class NodeServer:
    """Runs the app on address:port; port 0 picks a free port (see `.port`)."""

    def __init__(self, agent: NodeAgent, address: str, port: int) -> None:
        self.agent = agent
        self.address = address
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        self._runner = web.AppRunner(make_app(self.agent), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        # HTTPS, as the kubelet's port: its self-signed pair, made at the agent's start (serving_cert.py)
        tls = serving_cert.server_context(self.agent.data_dir, self.agent.name, [self.address],
                                          client_ca=self.agent.client.ca_file)
        site = web.TCPSite(self._runner, self.address, self.port, ssl_context=tls)
        await site.start()
        for addr in self._runner.addresses:
            if isinstance(addr, tuple) and len(addr) >= 2:
                self.port = int(addr[1])
                break
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
