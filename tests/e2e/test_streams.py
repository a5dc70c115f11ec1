"""kubectl exec / attach / cp / port-forward and the Python client's stream(),
over every protocol kubectl 1.32 and the client speak (WebSocket v5/v4, SPDY/3.1,
SPDY tunnelled in a WebSocket)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.conftest import KUBECTL

SPDY_ONLY = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false", "PORT_FORWARD_WEBSOCKETS": "false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def web(cluster, tmp_path_factory):
    """A pod serving HTTP with python3 -m http.server, in its own namespace."""
    ns = "streams-e2e"
    cluster.kubectl("create", "namespace", ns)
    port = free_port()
    cluster.kubectl("run", "web", "--image=demo:v1", "--restart=Never", "-n", ns, "--command", "--",
                    "python3", "-m", "http.server", str(port), "--bind", "0.0.0.0")
    cluster.kubectl("wait", "--for=condition=Ready", "pod/web", "-n", ns, "--timeout=30s")
    # the pod's own address: the host's with host networking, a bridge address with pod networking
    ip = cluster.kjson("get", "pod", "web", "-n", ns)["status"]["podIP"]
    cluster.wait_for(lambda: _http_ok(port, ip), what="http.server listening")
    yield ns, port
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _http_ok(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def kubectl_env(cluster, extra: dict[str, str] | None = None, *args: str, input: str | None = None,
                timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, *args], env={**cluster.env, **(extra or {})}, capture_output=True,
                          text=True, input=input, timeout=timeout, check=False)


@pytest.mark.parametrize("env", [{}, SPDY_ONLY], ids=["websocket", "spdy"])
def test_exec_streams_and_exit_code(cluster, web, env):
    ns, _ = web
    p = kubectl_env(cluster, env, "exec", "web", "-n", ns, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert p.returncode == 3, p.stderr
    assert p.stdout == "out\n"
    assert "err\n" in p.stderr and "command terminated with exit code 3" in p.stderr
    p = kubectl_env(cluster, env, "exec", "-i", "web", "-n", ns, "--", "sh", "-c", "tr a-z A-Z; pwd",
                    input="from stdin\n")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "FROM STDIN" and lines[1].endswith("/rootfs")  # the container's working dir


def test_exec_errors_read_like_upstream(cluster, web):
    ns, _ = web
    p = cluster.kubectl("exec", "web", "-n", ns, "--", "no-such-command", check=False)
    assert p.returncode == 1
    assert ('error: Internal error occurred: error executing command in container: failed to exec in '
            'container: exec: "no-such-command": executable file not found in $PATH') in p.stderr
    p = cluster.kubectl("exec", "web", "-n", ns, "-c", "nope", "--", "true", check=False)
    assert "container nope is not valid for pod web" in p.stderr


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
def test_exec_with_a_tty(cluster, web):
    ns, _ = web
    cmd = f"{KUBECTL} exec -it web -n {ns} -- sh"
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=cluster.env, capture_output=True, text=True,
                       input="tty; echo TERM=$TERM; exit 5\n", timeout=30, check=False)
    assert p.returncode == 5, p.stdout + p.stderr
    assert "/dev/pts/" in p.stdout and "TERM=xterm" in p.stdout


def test_cp_both_ways(cluster, web, tmp_path):
    ns, _ = web
    src = tmp_path / "up.txt"
    src.write_text("to the pod\n")
    cluster.kubectl("cp", str(src), f"{ns}/web:up.txt")
    assert cluster.kubectl("exec", "web", "-n", ns, "--", "cat", "up.txt").stdout == "to the pod\n"
    cluster.kubectl("exec", "web", "-n", ns, "--", "sh", "-c", "mkdir -p d && echo back > d/f.txt")
    cluster.kubectl("cp", f"{ns}/web:d", str(tmp_path / "d"))
    assert (tmp_path / "d" / "f.txt").read_text() == "back\n"


@pytest.mark.parametrize("env", [{}, SPDY_ONLY], ids=["spdy-over-websocket", "spdy"])
def test_port_forward(cluster, web, env):
    ns, port = web
    local = free_port()
    pf = subprocess.Popen([KUBECTL, "port-forward", "-n", ns, "pod/web", f"{local}:{port}"],
                          env={**cluster.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert pf.stdout is not None and "Forwarding from" in pf.stdout.readline()
        for _ in range(2):  # two connections over the same session
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=10) as r:
                assert r.status == 200 and b"<html>" in r.read()
    finally:
        pf.terminate()
        pf.wait(10)


def test_port_forward_to_a_closed_port_reports_the_error(cluster, web):
    ns, _ = web
    local, closed = free_port(), free_port()
    pf = subprocess.Popen([KUBECTL, "port-forward", "-n", ns, "pod/web", f"{local}:{closed}"],
                          env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert pf.stdout is not None and "Forwarding from" in pf.stdout.readline()
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=10).read()
        _, err = pf.communicate(timeout=15)
        assert pf.returncode == 1
        assert f"error forwarding port {closed} to pod" in err and "connection refused" in err
        assert "lost connection to pod" in err
    finally:
        if pf.poll() is None:
            pf.kill()


def test_run_interactive_attaches_to_stdin(cluster, web):
    ns, _ = web
    p = cluster.kubectl("run", "att", "-i", "--rm", "--image=demo:v1", "--restart=Never", "-n", ns,
                        "--command", "--", "sh", "-c", "read line; echo got:$line", input="hello\n")
    assert "got:hello" in p.stdout


def test_attach_to_a_running_container(cluster, web):
    ns, _ = web
    cluster.kubectl("apply", "-n", ns, "-f", "-", input="""
apiVersion: v1
kind: Pod
metadata: {name: echo}
spec:
  restartPolicy: Never
  containers:
  - {name: echo, image: "demo:v1", stdin: true, command: [sh, -c, 'while read l; do echo got:$l; done']}
""")
    cluster.kubectl("wait", "--for=condition=Ready", "pod/echo", "-n", ns, "--timeout=30s")
    att = subprocess.Popen([KUBECTL, "attach", "-i", "echo", "-n", ns], env=cluster.env, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert att.stdin is not None and att.stdout is not None
        att.stdin.write("ping\n")
        att.stdin.flush()
        assert att.stdout.readline().strip() == "got:ping"
    finally:
        att.kill()
        att.wait()
    assert "got:ping" in cluster.kubectl("logs", "echo", "-n", ns).stdout


def test_python_client_stream(cluster, web):
    from kubernetes import client
    from kubernetes.stream import portforward, stream

    ns, port = web
    v1 = client.CoreV1Api(cluster.api_client())
    out = stream(v1.connect_get_namespaced_pod_exec, "web", ns, command=["sh", "-c", "echo out; echo err >&2"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out == "out\nerr\n"
    ws = stream(v1.connect_get_namespaced_pod_exec, "web", ns, command=["sh", "-c", "cat; exit 7"],
                stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    ws.write_stdin("via stdin\n")
    deadline, got = time.monotonic() + 10, ""
    while "via stdin" not in got and time.monotonic() < deadline:
        ws.update(timeout=1)
        got += ws.read_stdout()
    assert got == "via stdin\n"
    ws.close_channel(0)  # v5: end of stdin
    ws.run_forever(timeout=10)
    assert ws.returncode == 7
    pf = portforward(v1.connect_get_namespaced_pod_portforward, "web", ns, ports=str(port))
    s = pf.socket(port)
    s.setblocking(True)
    s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    assert data.startswith(b"HTTP/1.0 200") and pf.error(port) is None


def test_websocket_v4_exec(cluster, web):
    """The v4 protocol (older clients): no stdin close signal, Status on channel 3."""
    import asyncio
    import json
    import ssl

    import aiohttp

    ns, _ = web
    import yaml

    user = yaml.safe_load(cluster.kubeconfig.read_text())["users"][0]["user"]
    token = f"Bearer {user['token']}"

    async def run() -> tuple[bytes, dict]:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        url = (f"{cluster.server}/api/v1/namespaces/{ns}/pods/web/exec?command=sh&command=-c"
               f"&command=echo+hi%3B+exit+2&stdout=true&stderr=true")
        out, status = b"", {}
        async with aiohttp.ClientSession() as s, s.ws_connect(
                url, protocols=("v4.channel.k8s.io",), ssl=ctx, headers={"Authorization": token}) as ws:
            assert ws.protocol == "v4.channel.k8s.io"
            async for msg in ws:
                if msg.data[0] == 1:
                    out += msg.data[1:]
                elif msg.data[0] == 3:
                    status = json.loads(msg.data[1:])
        return out, status

    out, status = asyncio.run(run())
    assert out == b"hi\n"
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "2"}]
