"""API machinery figures (issue 3), printed, never asserted.

Starts `kybern server --no-controllers --api-workers N` (TLS, as users run it)
on a free port in a temp dir, on SQLite or (--etcd) on a local etcd it starts,
then:

  1. pod creates/s            wrk (C, keep-alive, C connections) POSTing pods
                              with unique names for a few seconds
  2. single-object GETs/s     wrk GETting random ones of those pods
     status PATCHes/s         wrk sending a node agent's status merge patch to random pods
                              (--status-watchers W: W curl watches of the pods meanwhile)
  3. paced writes             creates at a fixed rate (500/s) from an aiohttp
                              client (open loop): p50/p99 latency
  4. watch fan-out            W watchers on one namespace: W-S silent ones held
                              by curl (--parallel, output discarded) and S
                              sampled ones in this process, which timestamp
                              each event; pods created there at a paced rate;
                              delay from sending the write to a sampled watcher
                              receiving its event (p50/p99 over all samples)
  5. LIST                     all pods as JSON: from storage (a single page), from
                              the watch cache once caught up (a consistent list
                              without limit, as upstream 1.32), resourceVersion=0
  6. watch cache memory       bytes per cached pod (tracemalloc) vs its JSON size

The load generators are C programs (wrk, curl) where they can be, so the
figures measure the server, not a Python client sharing its cores. The
server's CPU (all its processes) during each phase is printed too, with the
CPU time per request: that holds up better than rates on a shared machine.

Run: python bench/api.py [--api-workers 2] [--etcd] [--seconds 5] [--conns 16]
     [--watchers 1000] [--plain] [--quick] [--paced-only N] [--status-watchers W] [--profile DIR]

The server runs on uvloop, as `kybern server` does (docs/apiserver.md, "Event
loop"); `KYBERN_EVENT_LOOP=asyncio python bench/api.py` measures it on
asyncio's standard loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import aiohttp
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cluster import cpu_seconds

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"app": "bench", "tier": "web"}},
       "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


# the pod as a Lua string.format template for wrk (its name is the %s)
# (the name also goes in the spec, so no two pods are alike: caches keyed by content do not help)
POD_TEMPLATE = orjson.dumps({**POD, "metadata": {**POD["metadata"], "name": "NAME"},
                             "spec": {"containers": [{**POD["spec"]["containers"][0],  # type: ignore[index]
                                                      "env": [{"name": "POD", "value": "NAME"}]}]}}).decode() \
    .replace("%", "%%").replace("NAME", "%s")


def pod(name: str) -> bytes:
    p = orjson.loads(orjson.dumps(POD))
    p["metadata"]["name"] = name
    return orjson.dumps(p)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Server:
    """The apiserver under test, in its own process(es)."""

    def __init__(self, base: Path, plain: bool, workers: int, datastore: str) -> None:
        self.base = base
        data = base / "data"
        if plain:
            cmd = [sys.executable, __file__, "--serve-plain", str(data)]
        else:
            cmd = [sys.executable, "-m", "kybern.cli.main", "server", "--no-controllers", "--data-dir", str(data),
                   "--port", "0", "--api-workers", str(workers)]
            if datastore:
                cmd += ["--datastore", datastore]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(base / "server.log", "w"),  # noqa: SIM115
                                     text=True, env={**os.environ, "HOME": str(base)})
        assert self.proc.stdout
        line = self.proc.stdout.readline()
        m = re.search(r"(https?://[\d.:]+)", line)
        if not m:
            raise SystemExit(f"server did not start: {line!r}\n{(base / 'server.log').read_text()}")
        self.url = m.group(1)
        self.token = (data / "admin.token").read_text().strip()
        self.ca = str(data / "pki" / "ca.crt")
        self.ssl: ssl.SSLContext | bool = False
        if self.url.startswith("https"):
            self.ssl = ssl.create_default_context(cafile=self.ca)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 30
        while len(self.procs()) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2 if workers > 1 else 0)  # the workers' watch caches fill
        self.db = data / "state.db"

    def procs(self) -> list[psutil.Process]:
        return [self.ps, *self.ps.children(recursive=True)]

    def cpu(self) -> float:
        return cpu_seconds(self.ps)

    def rss_mb(self) -> float:
        return sum(p.memory_info().rss for p in self.procs()) / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Phase:
    """Wall time and server CPU share of one phase."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv

    def __enter__(self) -> Phase:  # noqa: PYI034
        self.t0, self.c0, self.me0 = time.perf_counter(), self.srv.cpu(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu_share = (self.srv.cpu() - self.c0) / self.wall
        self.client_share = (time.process_time() - self.me0) / self.wall

    def __str__(self) -> str:
        return f"server CPU {self.cpu_share:.0%}, client CPU {self.client_share:.0%}"

    def per_request(self, n: int) -> str:
        """Server CPU per request, and the rate one fully used core would give:
        a figure that holds up better than wall-clock rates on a shared machine."""
        us = self.cpu_share * self.wall / max(n, 1) * 1e6
        return f"server CPU {us:.0f} us/request = {1e6 / us:.0f}/s at one full core"


WRK_CREATE = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local count = 0
local template = [[%s]]
function request()
  count = count + 1
  local name = "p-" .. tid .. "-" .. count
  return wrk.format(nil, nil, nil, string.format(template, name, name))
end
"""

# wrk runs one Lua state per thread; unseeded, both would draw the same "random" sequence
WRK_SEED = """
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args) math.randomseed(tid * 7919) end
"""

WRK_GET = WRK_SEED.replace("%", "%%") + """
local names = {%s}
function request()
  return wrk.format("GET", "/api/v1/namespaces/default/pods/" .. names[math.random(#names)])
end
"""


PROFILE: Path | None = None  # --profile DIR: py-spy on every server process during each wrk run

# a node agent's pod status PATCH (merge patch, as kybern's and the kubelet's status manager send);
# restartCount is unique per request, so every patch changes the pod (a write and a watch event)
_T = "2026-11-22T20:00:00Z"
STATUS_TEMPLATE = orjson.dumps({"status": {
    "phase": "Running",
    "conditions": [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": _T}
                   for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")],
    "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}], "podIP": "10.1.0.7", "podIPs": [{"ip": "10.1.0.7"}],
    "startTime": _T, "qosClass": "Burstable",
    "containerStatuses": [{"name": "web", "state": {"running": {"startedAt": _T}}, "lastState": {}, "ready": True,
                           "restartCount": 12345, "image": "nginx:1.27", "imageID": "docker.io/library/nginx@sha256:"
                           + "0" * 64, "containerID": "containerd://" + "a" * 64, "started": True}]}}).decode() \
    .replace("%", "%%").replace("12345", "%d")

WRK_STATUS = WRK_SEED.replace("%", "%%") + """
wrk.method = "PATCH"
wrk.headers["Content-Type"] = "application/merge-patch+json"
local names = {%s}
local template = [[%s]]
local count = 0
function request()
  count = count + 1
  local path = "/api/v1/namespaces/default/pods/" .. names[math.random(#names)] .. "/status"
  return wrk.format(nil, path, nil, string.format(template, count * 16 + tid))
end
"""


def wrk(srv: Server, path: str, script: str, conns: int, seconds: float, phase: str) -> dict[str, float]:
    """Run wrk against the server; requests/s, latency percentiles (ms), errors."""
    lua = srv.base / "bench.lua"
    lua.write_text(script)
    spies = []
    if PROFILE:
        PROFILE.mkdir(parents=True, exist_ok=True)
        spies = [subprocess.Popen(["py-spy", "record", "--format", "raw", "--nonblocking", "-r", "250",
                                   "-d", f"{seconds:.0f}", "--pid", str(p.pid),
                                   "-o", str(PROFILE / f"{phase}-{p.pid}.txt")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for p in srv.procs()]
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds:.0f}s", "--latency", "-s", str(lua),
                          "-H", f"Authorization: Bearer {srv.token}", srv.url + path],
                         capture_output=True, text=True, check=True).stdout
    for spy in spies:
        spy.wait()
    res = {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
           "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
           "errors": float(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0.0}
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)", out, re.MULTILINE)
        if m:
            res[f"p{q}"] = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    return res


async def create_some(s: aiohttp.ClientSession, url: str, names: list[str]) -> None:
    for name in names:
        async with s.post(f"{url}/api/v1/namespaces/default/pods", data=pod(name),
                          headers={"Content-Type": "application/json"}) as r:
            await r.read()
            if r.status != 201:
                raise RuntimeError(f"create {name}: {r.status}")


async def paced_creates(s: aiohttp.ClientSession, url: str, ns: str, prefix: str, rate: float,
                        seconds: float, sent: dict[str, float] | None = None) -> list[float]:
    """Creates started on a fixed schedule (open loop); latency per request."""
    lat: list[float] = []
    tasks = []

    async def one(name: str) -> None:
        t = time.perf_counter()
        if sent is not None:
            sent[name] = t
        async with s.post(f"{url}/api/v1/namespaces/{ns}/pods", data=pod(name),
                          headers={"Content-Type": "application/json"}) as r:
            await r.read()
            if r.status != 201:
                raise RuntimeError(f"create {name}: {r.status}")
        lat.append(time.perf_counter() - t)

    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(f"{prefix}-{i}")))
    await asyncio.gather(*tasks)
    return lat


def silent_watchers(srv: Server, url: str, n: int) -> list[subprocess.Popen[bytes]]:
    """`n` watch connections held by curl (300 per process, curl's --parallel
    maximum), reading and discarding every event."""
    procs = []
    for start in range(0, n, 300):
        cfg = srv.base / f"watchers-{start}.curl"
        cfg.write_text("".join(f'url = "{url}"\noutput = "/dev/null"\n' for _ in range(min(300, n - start))))
        procs.append(subprocess.Popen(
            ["curl", "-sS", "--http1.1", "--parallel", "--parallel-immediate", "--parallel-max", "300",
             "--cacert", srv.ca, "-H", f"Authorization: Bearer {srv.token}", "-K", str(cfg)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        established = sum(len([c for c in psutil.Process(p.pid).net_connections("tcp")
                               if c.status == psutil.CONN_ESTABLISHED]) for p in procs)
        if established >= n:
            break
        time.sleep(0.2)
    return procs


async def watchers_phase(srv: Server, headers: dict[str, str], n_watchers: int, n_sampled: int, rate: float,
                         seconds: float) -> dict[str, float]:
    ns = "watch"
    conn = aiohttp.TCPConnector(limit=0, ssl=srv.ssl)
    delays: list[float] = []
    sent: dict[str, float] = {}
    n_sampled = min(n_sampled, n_watchers)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
        async with s.post(f"{srv.url}/api/v1/namespaces", data=orjson.dumps({"metadata": {"name": ns}}),
                          headers={"Content-Type": "application/json"}) as r:
            await r.read()
        async with s.get(f"{srv.url}/api/v1/namespaces/{ns}/pods") as r:
            rv = orjson.loads(await r.read())["metadata"]["resourceVersion"]
        ready = 0
        expected = int(rate * seconds)
        finished = asyncio.Event()
        remaining = [n_sampled]

        async def watch() -> None:
            nonlocal ready
            got = 0
            timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
            async with s.get(f"{srv.url}/api/v1/namespaces/{ns}/pods",
                             params={"watch": "true", "resourceVersion": rv}, timeout=timeout) as r:
                ready += 1
                buf = b""
                async for chunk in r.content.iter_any():
                    now = time.perf_counter()
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        ev = orjson.loads(line)
                        name = ev["object"]["metadata"]["name"]
                        if name in sent:
                            delays.append(now - sent[name])
                        got += 1
                    if got >= expected:
                        break
            remaining[0] -= 1
            if not remaining[0]:
                finished.set()

        before = srv.rss_mb()
        silent_url = f"{srv.url}/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}&timeoutSeconds=600"
        # sampled and silent watchers connect interleaved, so samples sit all along the server's fan-out
        tasks = []
        curls: list[subprocess.Popen[bytes]] = []
        step = max(1, (n_watchers - n_sampled) // max(n_sampled, 1))
        left = n_watchers - n_sampled
        for _ in range(n_sampled):
            tasks.append(asyncio.create_task(watch()))
            batch = min(step, left)
            if batch:
                curls += await asyncio.to_thread(silent_watchers, srv, silent_url, batch)
                left -= batch
        if left:
            curls += await asyncio.to_thread(silent_watchers, srv, silent_url, left)
        while ready < n_sampled:
            await asyncio.sleep(0.05)
        await asyncio.sleep(2)  # the last connections' watches registered
        registered = srv.rss_mb()
        with Phase(srv) as ph:
            await paced_creates(s, srv.url, ns, "w", rate, seconds, sent)
            try:
                await asyncio.wait_for(finished.wait(), 60)
            except TimeoutError:
                pass
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in curls:
            c.kill()
            c.wait()
    return {"deliveries": len(delays), "expected": expected * n_sampled, "p50": pct(delays, 0.5),
            "p99": pct(delays, 0.99), "max": max(delays or [0]), "cpu": str(ph), "rss_mb": registered,
            "rss_before_mb": before}


async def cache_memory(db: Path) -> tuple[float, float, int]:
    """Bytes per pod held by a watch cache over the bench's database, vs JSON size."""
    from kybern.apiserver.watchcache import WatchCache
    from kybern.storage.sqlite import SQLiteStore

    store = SQLiteStore(str(db))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache = WatchCache(store)
    await cache.ready()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    total = sum(len(rc.objects) for rc in cache.resources.values())
    pods = cache.resources["/registry/core/pods/"].objects
    json_avg = statistics.mean(len(e.raw) for e in pods.values())
    await cache.stop()
    await store.close()
    return used / total, json_avg, total


async def paced_rounds(srv: Server, headers: dict[str, str], args: argparse.Namespace) -> None:
    """--paced-only N: phase 3 alone, N times on one server (after 1 s of creates at
    200/s to warm it): the p99 target's figure in a minute, for A/B runs."""
    conn = aiohttp.TCPConnector(limit=0, ssl=srv.ssl)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
        await paced_creates(s, srv.url, "default", "warm", 200, 1)
        for r in range(args.paced_only):
            with Phase(srv) as ph:
                lat = await paced_creates(s, srv.url, "default", f"paced{r}", args.rate, args.seconds)
            print(f"paced creates at {args.rate:.0f}/s for {args.seconds:.0f}s (aiohttp): achieved "
                  f"{len(lat) / ph.wall:.0f}/s, p50 {pct(lat, .5) * 1e3:.1f} ms, p99 {pct(lat, .99) * 1e3:.1f} ms, "
                  f"max {max(lat) * 1e3:.0f} ms ({ph}; load {os.getloadavg()[0]:.1f})", flush=True)


async def run(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="kybern-bench-api-"))
    etcd = None
    datastore = ""
    if args.etcd:
        from tests.unit.storage.etcd_server import EtcdServer

        etcd = EtcdServer(base / "etcd").start()
        datastore = etcd.url()
    srv = Server(base, args.plain, args.api_workers, datastore)
    headers = {"Authorization": f"Bearer {srv.token}", "Accept": "application/json"}
    print(f"server {srv.url} ({'plain HTTP' if args.plain else 'TLS'}, {args.api_workers} apiserver process(es), "
          f"{'etcd' if etcd else 'SQLite'}), load before: {os.getloadavg()}")
    try:
        if args.paced_only:
            await paced_rounds(srv, headers, args)
            return
        conn = aiohttp.TCPConnector(limit=args.conns, ssl=srv.ssl)
        async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
            with Phase(srv) as ph:
                r = await asyncio.to_thread(wrk, srv, "/api/v1/namespaces/default/pods",
                                            WRK_CREATE % POD_TEMPLATE, args.conns, args.seconds, "create")
            print(f"creates (wrk, {args.conns} connections): {r['requests']:.0f} in {ph.wall:.1f}s = "
                  f"{r['rate']:.0f}/s, p50 {r.get('p50', 0):.1f} ms, p99 {r.get('p99', 0):.1f} ms, "
                  f"{r['errors']:.0f} non-2xx ({ph}; {ph.per_request(int(r['requests']))})")
            async with s.get(f"{srv.url}/api/v1/namespaces/default/pods", params={"resourceVersion": "0"}) as resp:
                listed = orjson.loads(await resp.read())
                names = [p["metadata"]["name"] for p in listed["items"]]
            if len(names) < args.pods and not args.quick:  # untimed: the LIST figures are for --pods pods
                extra = [f"fill-{i}" for i in range(args.pods - len(names))]
                await asyncio.gather(*(create_some(s, srv.url, extra[i::args.conns]) for i in range(args.conns)))
                names += extra
            with Phase(srv) as ph:
                r = await asyncio.to_thread(wrk, srv, "/", WRK_GET % ",".join(f'"{n}"' for n in names),
                                            args.conns, args.seconds, "get")
            print(f"GETs (wrk, {args.conns} connections, random pods of {len(names)}): {r['rate']:.0f}/s, "
                  f"p50 {r.get('p50', 0):.1f} ms, p99 {r.get('p99', 0):.1f} ms, {r['errors']:.0f} non-2xx "
                  f"({ph}; {ph.per_request(int(r['requests']))})")
            watching = silent_watchers(srv, f"{srv.url}/api/v1/namespaces/default/pods?watch=1&resourceVersion="
                                            f"{listed['metadata']['resourceVersion']}", args.status_watchers) \
                if args.status_watchers else []
            try:
                with Phase(srv) as ph:
                    r = await asyncio.to_thread(wrk, srv, "/", WRK_STATUS % (",".join(f'"{n}"' for n in names),
                                                                             STATUS_TEMPLATE),
                                                args.conns, args.seconds, "status")
            finally:
                for p in watching:
                    p.terminate()
                    p.wait()
            print(f"status PATCHes (wrk, {args.conns} connections, merge patch of a kubelet-like status, random "
                  f"pods, {args.status_watchers} watchers of the pods): {r['rate']:.0f}/s, p50 {r.get('p50', 0):.1f} "
                  f"ms, p99 {r.get('p99', 0):.1f} ms, {r['errors']:.0f} non-2xx "
                  f"({ph}; {ph.per_request(int(r['requests']))})")
            if args.quick:
                print(f"load after: {os.getloadavg()}")
                return
            for label, params in (("consistent, from storage (one page: limit=1000000)", {"limit": "1000000"}),
                                  ("consistent, from the caught-up watch cache", {}),
                                  ("resourceVersion=0, from the watch cache", {"resourceVersion": "0"})):
                times = []
                size = 0
                for _ in range(3):
                    t = time.perf_counter()
                    async with s.get(f"{srv.url}/api/v1/pods", params=params) as resp:
                        body = await resp.read()
                    times.append(time.perf_counter() - t)
                    size = len(body)
                count = len(orjson.loads(body)["items"])
                print(f"LIST {count} pods {label}: {statistics.median(times) * 1e3:.0f} ms median of 3 "
                      f"({size / 2**20:.1f} MiB)")
            with Phase(srv) as ph:
                lat = await paced_creates(s, srv.url, "default", "paced", args.rate, args.seconds)
            print(f"paced creates at {args.rate:.0f}/s for {args.seconds:.0f}s (aiohttp): achieved "
                  f"{len(lat) / ph.wall:.0f}/s, p50 {pct(lat, .5) * 1e3:.1f} ms, p99 {pct(lat, .99) * 1e3:.1f} ms "
                  f"({ph})")
        w = await watchers_phase(srv, headers, args.watchers, args.sampled, args.watch_rate, args.seconds) \
            if args.watchers else None
        if w:
            print(f"watch: {args.watchers} watchers ({args.sampled} sampled), pods created at "
                  f"{args.watch_rate:.0f}/s: {w['deliveries']}/{w['expected']} sampled events delivered, delay "
                  f"p50 {w['p50'] * 1e3:.1f} ms, p99 {w['p99'] * 1e3:.1f} ms, max {w['max'] * 1e3:.0f} ms "
                  f"({w['cpu']}; server RSS {w['rss_before_mb']:.0f} MB before the watchers, "
                  f"{w['rss_mb']:.0f} MB with them)")
        if not etcd:
            per, js, total = await cache_memory(srv.db)
            print(f"watch cache: {per:.0f} bytes per object ({total} objects) vs {js:.0f} bytes of JSON per pod "
                  f"= {per / js:.2f}x")
        print(f"server RSS at end: {srv.rss_mb():.0f} MB; load after: {os.getloadavg()}")
    finally:
        srv.stop()
        if etcd:
            etcd.stop()
        shutil.rmtree(base, ignore_errors=True)


def serve_plain(data_dir: str) -> None:
    """The apiserver without TLS (for --plain): same app, no controllers."""
    from aiohttp import web

    from kybern.apiserver import pki
    from kybern.apiserver.server import APIServer
    from kybern.storage.registry import open_store

    async def main() -> None:
        data = Path(data_dir)
        data.mkdir(parents=True, exist_ok=True)
        token = pki.ensure_token(data / "admin.token")
        api = APIServer(open_store(f"sqlite://{data / 'state.db'}"), tokens={token})
        await api.bootstrap()
        runner = web.AppRunner(api.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"serving http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api-workers", type=int, default=2, help="apiserver processes (kybern server --api-workers)")
    ap.add_argument("--etcd", action="store_true", help="store in a local etcd (started here) instead of SQLite")
    ap.add_argument("--conns", type=int, default=16, help="concurrent wrk connections")
    ap.add_argument("--pods", type=int, default=10_000, help="pods stored for the LIST figures (topped up)")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the timed phases")
    ap.add_argument("--rate", type=float, default=500.0, help="paced writes per second")
    ap.add_argument("--watchers", type=int, default=1000)
    ap.add_argument("--sampled", type=int, default=50, help="watchers (of --watchers) that time their events")
    ap.add_argument("--watch-rate", type=float, default=10.0, help="writes/s during the watch phase")
    ap.add_argument("--status-watchers", type=int, default=0,
                    help="watches of the pods (curl) held during the status PATCH phase: the fan-out's cost per write")
    ap.add_argument("--plain", action="store_true", help="plain HTTP instead of TLS")
    ap.add_argument("--quick", action="store_true",
                    help="creates, GETs and status PATCHes only (no top-up): for interleaved A/B runs of CPU per request")
    ap.add_argument("--paced-only", metavar="N", type=int, default=0,
                    help="only the paced writes (phase 3), N rounds on one server: the p99 figure alone")
    ap.add_argument("--profile", metavar="DIR", type=Path,
                    help="py-spy (raw, 250 Hz) every server process during the wrk phases, into DIR")
    ap.add_argument("--serve-plain", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global PROFILE
    PROFILE = args.profile
    if args.serve_plain:
        serve_plain(args.serve_plain)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
