"""API machinery figures (issue 3), printed, never asserted.

Starts `kybern server --no-controllers` (TLS, as users run it) on a free port
in a temp dir, or with --plain the same apiserver over plain HTTP (started by
this script, to show what TLS costs), then from one concurrent aiohttp client:

  1. pod creates/s            N pods created by C concurrent connections
  2. single-object GETs/s     random GETs of those pods for a few seconds
  3. paced writes             creates at a fixed rate (500/s): p50/p99 latency
  4. watch fan-out            W watchers on one namespace; pods created there at a
                              paced rate; delay from sending the write to each
                              watcher receiving its event (p50/p99 over all)
  5. LIST                     all pods as JSON: from storage (a single page), from
                              the watch cache once caught up (a consistent list
                              without limit, as upstream 1.32), resourceVersion=0
  6. watch cache memory       bytes per cached pod (tracemalloc) vs its JSON size

The server's CPU share during each phase is printed too: near 100% means the
server (one asyncio thread) is the limit, not the client.

Run: python bench/api.py [--pods 10000] [--conns 8] [--watchers 1000] [--plain]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
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

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"app": "bench", "tier": "web"}},
       "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


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
    """The apiserver under test, in its own process."""

    def __init__(self, base: Path, plain: bool) -> None:
        self.base = base
        data = base / "data"
        if plain:
            cmd = [sys.executable, __file__, "--serve-plain", str(data)]
        else:
            cmd = [sys.executable, "-m", "kybern.cli.main", "server", "--no-controllers", "--data-dir", str(data),
                   "--port", "0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(base / "server.log", "w"),  # noqa: SIM115
                                     text=True, env={**os.environ, "HOME": str(base)})
        assert self.proc.stdout
        line = self.proc.stdout.readline()
        m = re.search(r"(https?://[\d.:]+)", line)
        if not m:
            raise SystemExit(f"server did not start: {line!r}\n{(base / 'server.log').read_text()}")
        self.url = m.group(1)
        self.token = (data / "admin.token").read_text().strip()
        self.ssl: ssl.SSLContext | bool = False
        if self.url.startswith("https"):
            self.ssl = ssl.create_default_context(cafile=str(data / "pki" / "ca.crt"))
        self.ps = psutil.Process(self.proc.pid)
        self.db = data / "state.db"

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

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


async def create_pods(s: aiohttp.ClientSession, url: str, ns: str, names: list[str], conns: int) -> list[float]:
    it = iter(names)
    lat: list[float] = []

    async def worker() -> None:
        for name in it:
            t = time.perf_counter()
            async with s.post(f"{url}/api/v1/namespaces/{ns}/pods", data=pod(name),
                              headers={"Content-Type": "application/json"}) as r:
                await r.read()
                if r.status != 201:
                    raise RuntimeError(f"create {name}: {r.status}")
            lat.append(time.perf_counter() - t)

    await asyncio.gather(*(worker() for _ in range(conns)))
    return lat


async def gets(s: aiohttp.ClientSession, url: str, ns: str, names: list[str], conns: int,
               seconds: float) -> int:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with s.get(f"{url}/api/v1/namespaces/{ns}/pods/{random.choice(names)}") as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"get: {r.status}")
            done += 1

    await asyncio.gather(*(worker() for _ in range(conns)))
    return done


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


async def watchers_phase(srv: Server, headers: dict[str, str], n_watchers: int, rate: float,
                         seconds: float) -> dict[str, float]:
    ns = "watch"
    conn = aiohttp.TCPConnector(limit=0, ssl=srv.ssl)
    delays: list[float] = []
    sent: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
        async with s.post(f"{srv.url}/api/v1/namespaces", data=orjson.dumps({"metadata": {"name": ns}}),
                          headers={"Content-Type": "application/json"}) as r:
            await r.read()
        async with s.get(f"{srv.url}/api/v1/namespaces/{ns}/pods") as r:
            rv = orjson.loads(await r.read())["metadata"]["resourceVersion"]
        ready = 0
        expected = int(rate * seconds)
        finished = asyncio.Event()
        remaining = [n_watchers]

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
        tasks = [asyncio.create_task(watch()) for _ in range(n_watchers)]
        while ready < n_watchers:
            await asyncio.sleep(0.05)
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
    return {"deliveries": len(delays), "expected": expected * n_watchers, "p50": pct(delays, 0.5),
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


async def run(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="kybern-bench-api-"))
    srv = Server(base, args.plain)
    headers = {"Authorization": f"Bearer {srv.token}", "Accept": "application/json"}
    print(f"server {srv.url} ({'plain HTTP' if args.plain else 'TLS'}), load before: {os.getloadavg()}")
    try:
        conn = aiohttp.TCPConnector(limit=args.conns, ssl=srv.ssl)
        async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
            names = [f"p-{i:05d}" for i in range(args.pods)]
            with Phase(srv) as ph:
                lat = await create_pods(s, srv.url, "default", names, args.conns)
            print(f"creates: {len(names)} pods in {ph.wall:.2f}s = {len(names) / ph.wall:.0f}/s "
                  f"(p50 {pct(lat, .5) * 1e3:.1f} ms, p99 {pct(lat, .99) * 1e3:.1f} ms; {ph}; "
                  f"{ph.per_request(len(names))})")
            with Phase(srv) as ph:
                n = await gets(s, srv.url, "default", names, args.conns, args.seconds)
            print(f"GETs: {n / ph.wall:.0f}/s over {ph.wall:.1f}s ({ph}; {ph.per_request(n)})")
            for label, params in (("consistent, from storage (one page: limit=1000000)", {"limit": "1000000"}),
                                  ("consistent, from the caught-up watch cache", {}),
                                  ("resourceVersion=0, from the watch cache", {"resourceVersion": "0"})):
                times = []
                size = 0
                for _ in range(3):
                    t = time.perf_counter()
                    async with s.get(f"{srv.url}/api/v1/pods", params=params) as r:
                        body = await r.read()
                    times.append(time.perf_counter() - t)
                    size = len(body)
                count = len(orjson.loads(body)["items"])
                print(f"LIST {count} pods {label}: {statistics.median(times) * 1e3:.0f} ms median of 3 "
                      f"({size / 2**20:.1f} MiB)")
            with Phase(srv) as ph:
                lat = await paced_creates(s, srv.url, "default", "paced", args.rate, args.seconds)
            print(f"paced creates at {args.rate:.0f}/s for {args.seconds:.0f}s: achieved "
                  f"{len(lat) / ph.wall:.0f}/s, p50 {pct(lat, .5) * 1e3:.1f} ms, p99 {pct(lat, .99) * 1e3:.1f} ms "
                  f"({ph})")
        w = await watchers_phase(srv, headers, args.watchers, args.watch_rate, args.seconds) \
            if args.watchers else None
        if w:
            print(f"watch: {args.watchers} watchers, pods created at {args.watch_rate:.0f}/s: "
                  f"{w['deliveries']}/{w['expected']} events delivered, delay p50 {w['p50'] * 1e3:.1f} ms, "
                  f"p99 {w['p99'] * 1e3:.1f} ms, max {w['max'] * 1e3:.0f} ms ({w['cpu']}; server RSS "
                  f"{w['rss_before_mb']:.0f} MB before the watchers, {w['rss_mb']:.0f} MB with them)")
        per, js, total = await cache_memory(srv.db)
        print(f"watch cache: {per:.0f} bytes per object ({total} objects) vs {js:.0f} bytes of JSON per pod "
              f"= {per / js:.2f}x")
        print(f"server RSS at end: {srv.rss_mb():.0f} MB; load after: {os.getloadavg()}")
    finally:
        srv.stop()


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
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--conns", type=int, default=8, help="concurrent client connections")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the timed phases")
    ap.add_argument("--rate", type=float, default=500.0, help="paced writes per second")
    ap.add_argument("--watchers", type=int, default=1000)
    ap.add_argument("--watch-rate", type=float, default=10.0, help="writes/s during the watch phase")
    ap.add_argument("--plain", action="store_true", help="plain HTTP instead of TLS")
    ap.add_argument("--serve-plain", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_plain:
        serve_plain(args.serve_plain)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
