"""Probe and hook handlers against real sockets and a real process runtime:
HTTP status ranges and headers, Go-worded errors, named ports, exec in the
container's environment and working dir."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from kybern.node.images import ImageStore
from kybern.node.probes import ProbeError, http_get, resolve_port, tcp_connect
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

