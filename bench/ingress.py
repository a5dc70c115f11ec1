"""Ingress data-plane figures (issue 6): HTTPS requests/s and latency through
the ingress controller's nginx, against the same nginx binary with a minimal
hand-written config proxying straight to the same pod — side by side, in
interleaved rounds, on one cluster.

    python bench/ingress.py [--rounds 8] [--duration 6] [--latency-duration 6] [--connections 32]
                            [--instructions 800] [--plane auto|nginx|builtin]

Starts a private `kybern up` (temp dir, free ports), a one-replica echo
Deployment (an asyncio HTTP/1.1 keep-alive server), a Service and a TLS
Ingress. Then:

- the pod directly (plain HTTP) once, for context;
- `--rounds` rounds, each with: a throughput run of the minimal nginx and of
  the ingress (wrk, `--connections` keep-alive connections; the order
  alternates between rounds, so drift in the machine's load hits both alike),
  then a paired latency run: one kept-alive connection to each, requests
  strictly alternating between the two (one at a time, so none queues behind
  another), for `--latency-duration` seconds.

Both nginx instances are the same binary, proxy to the same pod IP:port with
the same upstream keep-alive (as ingress-nginx does), and serve the same
certificate (same key type) with the same TLS settings (`ingress_nginx.TLS`,
`ingress_nginx.UPSTREAM_KEEPALIVE`), so the difference is what the rendered
config does per request.

Reported: the median of each target over the rounds; the median of the
per-round ratios ingress/minimal; "p99 added latency" = the ingress's p99 minus
the minimal nginx's p99 in the same paired run, median over rounds. (The same
difference at `--connections` is printed too, but a saturated server's latency
is mostly queueing: ≈ connections / rate.) With `--instructions N`, both
configs also run once more under valgrind's callgrind (one process) and their
user-space instructions per request are printed — a figure the machine's load
does not move.

Uses Debian's wrk, or without it a Python aiohttp load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kybern.network.ingress_certs import self_signed
from kybern.network.ingress_nginx import TLS, UPSTREAM_KEEPALIVE, find_nginx

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

# The baseline: what anyone would write to put nginx with TLS in front of one
# pod. Same TLS settings and upstream keep-alive as the ingress (both from
# ingress_nginx.py); nothing else.
MINIMAL_CONF = """daemon off; master_process on; worker_processes auto; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; {tls}
  upstream pod {{ server {pod}; {keepalive} }}
  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {d}/c.pem; ssl_certificate_key {d}/k.pem;
    location / {{ proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://pod; }} }} }}
"""

Result = tuple[float, float, float]  # requests/s, p50 ms, p99 ms


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl(env: dict[str, str], *args: str, input: str | None = None) -> str:
    return subprocess.run(["kubectl", *args], env=env, input=input, capture_output=True, text=True,
                          check=True).stdout


def wait(pred: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def wrk(url: str, duration: int, conns: int) -> Result:
    out = subprocess.run(["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{duration}s", "--latency",
                          "-H", f"Host: {HOST}", url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        v, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rps, pct("50"), pct("99")


def pyload(url: str, duration: int, conns: int) -> Result:
    import ssl

    import aiohttp

    async def run() -> Result:
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


@dataclass
class Bench:
    tmp: Path
    env: dict[str, str]
    http: int            # the ingress's ports
    https: int
    pod: str             # ip:port of the echo pod
    crt: bytes
    key: bytes


@contextlib.contextmanager
def cluster(plane: str = "auto") -> Iterator[Bench]:
    """A private `kybern up` with the echo pod, its Service and a TLS Ingress, ready."""
    tmp = Path(tempfile.mkdtemp(prefix="kybern-bench-ingress-"))
    http, https, pod_port = free_port(), free_port(), free_port()
    env = {**os.environ, "HOME": str(tmp), "KUBECONFIG": str(tmp / "kubeconfig")}
    proc = subprocess.Popen([sys.executable, "-m", "kybern.cli.main", "up", "--data-dir", str(tmp / "data"),
                             "--port", "0", "--kubeconfig", str(tmp / "kubeconfig"), "--ingress-http-port", str(http),
                             "--ingress-https-port", str(https), "--ingress-plane", plane],
                            env=env, stdout=subprocess.PIPE, stderr=(tmp / "log").open("w"), text=True,
                            start_new_session=True)
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
        yield Bench(tmp, env, http, https, f"{pod_ip}:{pod_port}", crt, key)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def nginx_with(b: Bench, name: str, conf: str, *, under: list[str] | None = None) -> Iterator[int]:
    """Run the same nginx binary with `conf` ({d} = its own directory, holding c.pem/k.pem
    and a copy of the ingress's certs/); yields its pid. `under` prefixes the command
    (valgrind)."""
    d = b.tmp / name
    d.mkdir()
    (d / "c.pem").write_bytes(b.crt)
    (d / "k.pem").write_bytes(b.key)
    if (b.tmp / "data" / "ingress" / "certs").is_dir():  # the nginx plane's
        shutil.copytree(b.tmp / "data" / "ingress" / "certs", d / "certs")
    for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (d / "tmp" / t).mkdir(parents=True)
    (d / "nginx.conf").write_text(conf.replace("{d}", str(d)))
    nginx = find_nginx()
    assert nginx
    p = subprocess.Popen([*(under or []), nginx, "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")],
                         start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        port = int(re.search(r"listen 127.0.0.1:(\d+) ssl", conf).group(1))  # type: ignore[union-attr]
        wait(lambda: _accepts(port), 60, f"nginx ({name}) on port {port}")
        yield p.pid
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def minimal_conf(b: Bench, port: int) -> str:
    return MINIMAL_CONF.format(d="{d}", tls=" ".join(TLS), keepalive=UPSTREAM_KEEPALIVE, pod=b.pod, port=port)


def ingress_conf(b: Bench, port: int) -> str:
    """The controller's live nginx.conf, moved to another directory and port."""
    prefix = b.tmp / "data" / "ingress"
    conf = (prefix / "nginx.conf").read_text().replace(str(prefix), "{d}")
    conf = re.sub(r"^user .*\n", "", conf, flags=re.MULTILINE)  # runs as the bench's user
    conf = re.sub(rf":{b.http}\b", f":{free_port()}", conf)
    return re.sub(rf":{b.https}\b", f":{port}", conf)


class Conn:
    """One kept-alive HTTPS connection to 127.0.0.1:port, sending GET / for HOST
    one request at a time; reopened (untimed) before nginx's 1000-request limit."""

    def __init__(self, port: int) -> None:
        import ssl

        self.port, self.sent = port, 0
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname, self.ctx.verify_mode = False, ssl.CERT_NONE
        self._open()

    def _open(self) -> None:
        self.sock = self.ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port)), server_hostname=HOST)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def get(self) -> float:
        """One request; its latency in ms (send to end of body)."""
        if self.sent and self.sent % 900 == 0:
            self.close()
            self._open()
        self.sent += 1
        t = time.perf_counter()
        self.sock.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: bench\r\n\r\n".encode())
        status = self.file.readline()
        if not status.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(f"unexpected answer from port {self.port}: {status!r}")
        length, chunked = 0, False
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if chunked:  # the built-in plane streams bodies
            while (size := int(self.file.readline().split(b";")[0], 16)):
                self.file.read(size + 2)
            self.file.readline()
        else:
            self.file.read(length)
        return (time.perf_counter() - t) * 1000


def paired_latency(ports: dict[str, int], seconds: float) -> dict[str, tuple[float, float]]:
    """(p50, p99) ms per target, one connection each, requests strictly alternating
    between the targets (order flipped every pair): whatever the rest of the machine
    does hits both alike, so the difference of their percentiles is the proxy's."""
    conns = {n: Conn(p) for n, p in ports.items()}
    lat: dict[str, list[float]] = {n: [] for n in ports}
    names = list(ports)
    try:
        for c in conns.values():  # warm: upstream keep-alive connection, caches
            for _ in range(50):
                c.get()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for n in names:
                lat[n].append(conns[n].get())
            names.reverse()
    finally:
        for c in conns.values():
            c.close()
    out = {}
    for n, xs in lat.items():
        q = statistics.quantiles(xs, n=100)
        out[n] = (q[49], q[98])
    return out


def instructions(b: Bench, name: str, conf: str, port: int, n: int) -> float:
    """User-space instructions per request of one nginx process (master_process
    off) serving `conf`, counted by valgrind's callgrind over `n` requests on one
    kept-alive TLS connection (handshakes and warm-up excluded; keep n < 900). Independent of
    the machine's load, unlike requests/s; kernel time (the syscalls, which
    strace shows to be the same for both configs) is not counted."""
    conf = conf.replace("master_process on;", "master_process off;").replace("worker_processes auto;",
                                                                              "worker_processes 1;")
    out = b.tmp / f"callgrind-{name}"
    with nginx_with(b, f"cg-{name}", conf, under=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]) \
            as pid:
        c = Conn(port)
        try:
            for _ in range(50):
                c.get()
            subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True, check=True)
            for _ in range(n):
                c.get()
            subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=True)
        finally:
            c.close()
    dump = next(p for p in sorted(out.parent.glob(out.name + "*")) if "Trigger: dump" in p.read_text())
    return int(re.search(r"^summary: (\d+)", dump.read_text(), re.MULTILINE).group(1)) / n  # type: ignore[union-attr]


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--duration", type=int, default=6, help="seconds per throughput run")
    ap.add_argument("--latency-duration", type=int, default=6, help="seconds per paired one-connection run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--plane", default="auto", choices=["auto", "nginx", "builtin"])
    ap.add_argument("--instructions", type=int, default=0, metavar="N",
                    help="also count nginx's instructions per request over N requests (valgrind callgrind; "
                         "N < 900: both configs close a connection after 1000 requests)")
    a = ap.parse_args()
    if a.instructions >= 900:
        ap.error("--instructions must be below 900")
    load = wrk if shutil.which("wrk") else pyload
    med = statistics.median
    print(f"load average at start: {load_avg()}")
    with cluster(a.plane) as b:
        pod = load(f"http://{b.pod}/", a.duration, a.connections)
        ports = {"ingress": b.https}
        with contextlib.ExitStack() as stack:
            if find_nginx():
                port = free_port()
                stack.enter_context(nginx_with(b, "minimal", minimal_conf(b, port)))
                ports = {"minimal": port, **ports}
            thr: list[dict[str, Result]] = []
            lat: list[dict[str, tuple[float, float]]] = []
            for r in range(a.rounds):
                names = list(ports) if r % 2 == 0 else list(reversed(ports))
                thr.append({n: load(f"https://127.0.0.1:{ports[n]}/", a.duration, a.connections) for n in names})
                lat.append(paired_latency({n: ports[n] for n in names}, a.latency_duration))
                print(f"round {r + 1}: " + "; ".join(
                    f"{n} {thr[-1][n][0]:,.0f} req/s p99 {thr[-1][n][2]:.2f} ms (1 conn: p50 {lat[-1][n][0]:.2f} "
                    f"p99 {lat[-1][n][1]:.2f} ms)" for n in names) + f"; load {load_avg()}", flush=True)
        counts = {}
        if a.instructions and "minimal" in ports and shutil.which("valgrind") and \
                (b.tmp / "data" / "ingress" / "nginx.conf").exists():
            p1, p2 = free_port(), free_port()
            counts = {"minimal": instructions(b, "minimal", minimal_conf(b, p1), p1, a.instructions),
                      "ingress": instructions(b, "ingress", ingress_conf(b, p2), p2, a.instructions)}
    print(f"\n{load.__name__}: {a.connections} connections × {a.duration} s per target per round; paired "
          f"one-connection latency {a.latency_duration} s per round; {a.rounds} rounds; {os.cpu_count()} cores "
          f"shared by load generator, proxies and pod; load average at end: {load_avg()}\n")
    print(f"| target ({a.plane} plane) | requests/s | p50 ms | p99 ms | 1 conn: p50 ms | 1 conn: p99 ms |")
    print("|---|---|---|---|---|---|")
    print(f"| the pod directly (plain HTTP, once) | {pod[0]:,.0f} | {pod[1]:.2f} | {pod[2]:.2f} | | |")
    for n in ports:
        print(f"| {n} (median of {a.rounds}) | {med(t[n][0] for t in thr):,.0f} | {med(t[n][1] for t in thr):.2f} | "
              f"{med(t[n][2] for t in thr):.2f} | {med(x[n][0] for x in lat):.2f} | {med(x[n][1] for x in lat):.2f} |")
    if "minimal" in ports:
        def series(f: Callable[[int], float], fmt: str = "+.2f") -> str:
            xs = [f(i) for i in range(a.rounds)]
            return f"median {med(xs):{fmt}} (rounds: {', '.join(f'{x:{fmt}}' for x in xs)})"

        print(f"\ningress / minimal requests/s: {series(lambda i: thr[i]['ingress'][0] / thr[i]['minimal'][0], '.2f')}")
        print(f"p99 added latency, ms (one connection each, requests alternating, ingress − minimal): "
              f"{series(lambda i: lat[i]['ingress'][1] - lat[i]['minimal'][1])}")
        print(f"p50 added latency, ms (same runs): {series(lambda i: lat[i]['ingress'][0] - lat[i]['minimal'][0])}")
        print(f"p99 difference at {a.connections} connections, ms (queueing included): "
              f"{series(lambda i: thr[i]['ingress'][2] - thr[i]['minimal'][2])}")
        if counts:
            print(f"nginx user-space instructions per request (callgrind, {a.instructions} requests, one "
                  f"connection): minimal {counts['minimal']:,.0f}, ingress {counts['ingress']:,.0f} "
                  f"({counts['ingress'] / counts['minimal'] - 1:+.0%})")


if __name__ == "__main__":
    main()
