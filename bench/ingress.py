"""Ingress data-plane figures: HTTPS requests/s and p99 latency through the
ingress controller's nginx, against the same nginx binary with a minimal
hand-written config proxying straight to the pod, and the pod itself (plain HTTP).

    python bench/ingress.py [--duration 10] [--connections 32]

Starts a private `kybern up` (temp dir, free ports), a one-replica echo
Deployment (an asyncio HTTP/1.1 keep-alive server), a Service and a TLS
Ingress; then loads each target with wrk (Debian's) or, without wrk, a Python
aiohttp load generator. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kybern.network.ingress_certs import self_signed
from kybern.network.ingress_nginx import find_nginx

HOST = "bench.example.test"
ECHO = """
import asyncio, os
BODY = os.environ["HOSTNAME"].encode()
RESP = b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\nContent-Type: text/plain\\r\\n\\r\\n%s" % (len(BODY), BODY)
class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, d):
        self.buf += d
        while b"\\r\\n\\r\\n" in self.buf:
            _, self.buf = self.buf.split(b"\\r\\n\\r\\n", 1)
            self.t.write(RESP)
async def main():
    s = await asyncio.get_running_loop().create_server(P, "", int(os.environ["PORT"]), reuse_port=True)
    await s.serve_forever()
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl(env: dict[str, str], *args: str, input: str | None = None) -> str:
    return subprocess.run(["kubectl", *args], env=env, input=input, capture_output=True, text=True,
                          check=True).stdout


def wait(pred, timeout: float = 60, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def wrk(url: str, duration: int, conns: int) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms)."""
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", "-H", f"Host: {HOST}", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        v, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rps, pct("50"), pct("99")


def pyload(url: str, duration: int, conns: int) -> tuple[float, float, float]:
    import ssl

    import aiohttp

    async def run() -> tuple[float, float, float]:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        lat: list[float] = []
        end = time.monotonic() + duration
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=conns)) as s:
            async def worker() -> None:
                while time.monotonic() < end:
                    t = time.perf_counter()
                    async with s.get(url, headers={"Host": HOST}) as r:
                        await r.read()
                    lat.append((time.perf_counter() - t) * 1000)
            await asyncio.gather(*(worker() for _ in range(conns)))
        q = statistics.quantiles(lat, n=100)
        return len(lat) / duration, q[49], q[98]

    return asyncio.run(run())


DIRECT_CONF = """daemon off; master_process on; worker_processes auto; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off;
  upstream pod {{ server 127.0.0.1:{pod}; keepalive 320; }}
  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {d}/c.pem; ssl_certificate_key {d}/k.pem;
    location / {{ proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://pod; }} }} }}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--plane", default="auto", choices=["auto", "nginx", "builtin"])
    a = ap.parse_args()
    load = wrk if shutil.which("wrk") else pyload
    tmp = Path(tempfile.mkdtemp(prefix="kybern-bench-ingress-"))
    http, https, pod_port = free_port(), free_port(), free_port()
    env = {**os.environ, "HOME": str(tmp), "KUBECONFIG": str(tmp / "kubeconfig")}
    proc = subprocess.Popen([sys.executable, "-m", "kybern.cli.main", "up", "--data-dir", str(tmp / "data"),
                             "--port", "0", "--kubeconfig", str(tmp / "kubeconfig"), "--ingress-http-port", str(http),
                             "--ingress-https-port", str(https), "--ingress-plane", a.plane],
                            env=env, stdout=subprocess.PIPE, stderr=(tmp / "log").open("w"), text=True,
                            start_new_session=True)
    direct: subprocess.Popen[bytes] | None = None
    try:
        while "API at" not in (proc.stdout.readline() if proc.stdout else "API at"):
            pass
        crt, key = self_signed(HOST, [HOST])
        (tmp / "c.pem").write_bytes(crt)
        (tmp / "k.pem").write_bytes(key)
        kubectl(env, "create", "secret", "tls", "bench-tls", f"--cert={tmp / 'c.pem'}", f"--key={tmp / 'k.pem'}")
        objs = [
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo"},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "echo"}}, "template": {
                 "metadata": {"labels": {"app": "echo"}}, "spec": {"containers": [{
                     "name": "echo", "image": "demo:v1", "command": ["python3", "-c", ECHO],
                     "env": [{"name": "PORT", "value": str(pod_port)}], "ports": [{"containerPort": pod_port}],
                     "readinessProbe": {"tcpSocket": {"port": pod_port}, "periodSeconds": 1}}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
             "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": pod_port}]}},
            {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "echo"},
             "spec": {"tls": [{"hosts": [HOST], "secretName": "bench-tls"}], "rules": [{"host": HOST, "http": {
                 "paths": [{"path": "/", "pathType": "Prefix",
                            "backend": {"service": {"name": "echo", "port": {"number": 80}}}}]}}]}},
        ]
        kubectl(env, "apply", "-f", "-", input=yaml.safe_dump_all(objs))
        pod_ip = ""

        def ready() -> bool:
            nonlocal pod_ip
            pods = json.loads(kubectl(env, "get", "pods", "-l", "app=echo", "-o", "json"))["items"]
            ok = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                         for c in p.get("status", {}).get("conditions", []))]
            pod_ip = ok[0]["status"]["podIP"] if ok else ""
            return bool(ok) and subprocess.run(
                ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Host: {HOST}",
                 f"https://127.0.0.1:{https}/"], capture_output=True, text=True, check=False).stdout == "200"

        try:
            wait(ready, what="the echo pod behind the ingress")
        except SystemExit:
            print((tmp / "log").read_text()[-3000:], file=sys.stderr)
            raise
        rows = []
        rows.append(("pod directly (plain HTTP, no proxy)", load(f"http://{pod_ip}:{pod_port}/", a.duration,
                                                                 a.connections)))
        nginx = find_nginx()
        if nginx:
            dport = free_port()
            (tmp / "direct").mkdir()
            (tmp / "direct" / "c.pem").write_bytes(crt)
            (tmp / "direct" / "k.pem").write_bytes(key)
            conf = tmp / "direct" / "nginx.conf"
            conf.write_text(DIRECT_CONF.format(d=tmp / "direct", pod=pod_port, port=dport).replace(
                "127.0.0.1:" + str(pod_port), f"{pod_ip}:{pod_port}"))
            direct = subprocess.Popen([nginx, "-p", str(tmp / "direct"), "-e", str(tmp / "direct/error.log"),
                                       "-c", str(conf)], start_new_session=True)
            time.sleep(0.5)
            rows.append(("same nginx, minimal config → pod (HTTPS)", load(f"https://127.0.0.1:{dport}/", a.duration,
                                                                          a.connections)))
        rows.append((f"through the ingress ({a.plane} plane, HTTPS)", load(f"https://127.0.0.1:{https}/",
                                                                          a.duration, a.connections)))
        base_p99 = rows[0][1][2]
        print(f"\n{load.__name__}, {a.connections} connections, {a.duration} s each, "
              f"{os.cpu_count()} cores shared by load generator, proxy and pod\n")
        print("| target | requests/s | p50 ms | p99 ms | p99 added vs pod |")
        print("|---|---|---|---|---|")
        for name, (rps, p50, p99) in rows:
            print(f"| {name} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {p99 - base_p99:+.2f} ms |")
    finally:
        if direct is not None:
            direct.send_signal(signal.SIGTERM)
            direct.wait()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
