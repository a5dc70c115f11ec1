"""Probe and hook handlers against real sockets and a real process runtime:
HTTP status ranges and headers, Go-worded errors, named ports, exec in the
container's environment and working dir, gRPC health checks against a real
grpcio server."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kybern.node.images import ImageStore
from kybern.node.probes import (
    FAILURE,
    SUCCESS,
    ProbeError,
    go_code,
    go_duration,
    grpc_check,
    http_get,
    join_host_port,
    resolve_port,
    tcp_connect,
)
from kybern.node.runtimes.base import ContainerConfig, PodSandboxConfig
from kybern.node.runtimes.process import ProcessRuntime

SEEN: dict[str, str] = {}  # headers of the last request the test server got


@pytest.fixture
async def server() -> AsyncIterator[int]:
    seen = SEEN

    async def handle(request: web.Request) -> web.Response:
        seen.clear()
        seen.update(request.headers)
        code = int(request.match_info.get("code") or 200)
        return web.Response(status=code, text=f"code {code}", headers={"Location": "/elsewhere"})

    app = web.Application()
    app.router.add_get("/status/{code}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield port
    await runner.cleanup()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_http_get_reports_status_and_sends_kube_probe_headers(server: int) -> None:
    container = {"name": "web", "ports": [{"name": "http", "containerPort": server}]}
    code, body = await http_get({"path": "/status/500", "port": "http",
                                 "httpHeaders": [{"name": "X-Check", "value": "yes"}]}, container, "127.0.0.1", 2)
    assert (code, body) == (500, "code 500")
    assert SEEN["X-Check"] == "yes"
    code, _ = await http_get({"path": "/status/302", "port": server}, container, "127.0.0.1", 2)
    assert code == 302  # not followed; 2xx and 3xx both pass
    assert SEEN["User-Agent"] == "kube-probe/1.32" and "X-Check" not in SEEN


async def test_connection_errors_use_go_wording() -> None:
    port = _closed_port()
    with pytest.raises(ProbeError) as e:
        await http_get({"path": "/healthz", "port": port}, {"name": "c"}, "127.0.0.1", 1)
    assert str(e.value) == f'Get "http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: connect: ' \
                           f'connection refused'
    with pytest.raises(ProbeError) as e:
        await tcp_connect({"port": port}, {"name": "c"}, "127.0.0.1", 1)
    assert str(e.value) == f"dial tcp 127.0.0.1:{port}: connect: connection refused"


async def test_tcp_probe_succeeds_on_a_listening_port(server: int) -> None:
    await tcp_connect({"port": server}, {"name": "c"}, "127.0.0.1", 1)


def test_named_and_numeric_ports() -> None:
    c = {"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", c) == 8080
    assert resolve_port(81, c) == 81
    assert resolve_port("82", c) == 82
    with pytest.raises(ValueError):
        resolve_port("grpc", c)


async def test_exec_sync_runs_in_the_containers_environment_and_dir(tmp_path: Path) -> None:
    src = tmp_path / "img"
    src.mkdir()
    (src / "marker").write_text("inside\n")
    store = ImageStore(tmp_path / "node", seed_samples=False)
    store.import_dir("tool:1", src, config={"env": ["GREETING=hello"]})
    rt = ProcessRuntime(tmp_path / "node", store)
    await rt.start()
    try:
        sc = PodSandboxConfig(name="p", namespace="default", uid="u", log_directory=str(tmp_path / "logs"))
        sid = await rt.run_pod_sandbox(sc)
        cid = await rt.create_container(sid, ContainerConfig(name="c", image="tool:1", command=["sleep", "30"],
                                                             env=[("EXTRA", "x")], log_path="c/0.log"), sc)
        await rt.start_container(cid)
        code, out = await rt.exec_sync(cid, ["sh", "-c", "cat marker; echo $GREETING $EXTRA; exit 3"], 5)
        assert (code, out) == (3, b"inside\nhello x\n")
        with pytest.raises(TimeoutError):
            await rt.exec_sync(cid, ["sleep", "5"], 0.3)
        code, out = await rt.exec_sync(cid, ["no-such-binary"], 5)
        assert code == 127 and b"executable file not found" in out
    finally:
        await rt.shutdown(1)



def test_go_formatting_of_durations_codes_and_addresses() -> None:
    assert [go_duration(s) for s in (1, 10.0, 60, 90, 3600, 3661)] == ["1s", "10s", "1m0s", "1m30s", "1h0m0s",
                                                                       "1h1m1s"]
    assert [go_code(n) for n in ("UNAVAILABLE", "CANCELLED", "NOT_FOUND", "OK")] == \
        ["Unavailable", "Canceled", "NotFound", "OK"]
    assert join_host_port("10.0.0.1", 80) == "10.0.0.1:80" and join_host_port("fd00::1", 80) == "[fd00::1]:80"


def test_the_agent_does_not_import_grpc_until_a_grpc_probe_runs() -> None:
    # grpcio costs ~14 MB of RSS (docs/node.md); the idle agent's budget has no room for it
    code = "import sys, kybern.node.agent, kybern.node.probes; print('grpc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.fixture
def grpc_server() -> Iterator[tuple[int, int]]:
    """A real grpcio server with the standard health service ("" SERVING, "db" NOT_SERVING)
    and, on a second port, a server without it."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    h = health.HealthServicer()
    h.set("db", health_pb2.HealthCheckResponse.NOT_SERVING)
    s = grpc.server(futures.ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(h, s)
    port = s.add_insecure_port("127.0.0.1:0")
    bare = grpc.server(futures.ThreadPoolExecutor(1))
    bare_port = bare.add_insecure_port("127.0.0.1:0")
    s.start()
    bare.start()
    yield port, bare_port
    s.stop(0)
    bare.stop(0)


async def test_grpc_check_results_and_upstream_messages(grpc_server: tuple[int, int]) -> None:
    port, bare_port = grpc_server
    assert await grpc_check({"port": port}, "127.0.0.1", 1) == (SUCCESS, "")
    assert await grpc_check({"port": port, "service": "db"}, "127.0.0.1", 1) == \
        (FAILURE, 'service unhealthy (responded with "NOT_SERVING")')
    result, msg = await grpc_check({"port": port, "service": "nope"}, "127.0.0.1", 1)
    assert result == FAILURE and msg.startswith("error: health rpc probe failed: rpc error: code = NotFound desc = ")
    result, msg = await grpc_check({"port": bare_port}, "127.0.0.1", 1)
    assert result == FAILURE and msg.startswith(
        "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): ")
    closed = _closed_port()
    assert await grpc_check({"port": closed}, "127.0.0.1", 1) == \
        (FAILURE, f'timeout: failed to connect service "127.0.0.1:{closed}" within 1s: context deadline exceeded')
