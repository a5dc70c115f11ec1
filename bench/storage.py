"""Storage backend figures, printed, never asserted: creates/s and gets/s through
the Store interface, for SQLite (a temp file) and etcd (a local etcd process,
started on free ports unless --etcd URL is given).

Each figure is measured one request at a time (what one apiserver handler waits
for) and with 16 requests in flight (many clients at once). Values are 1 KiB,
about the size of a small Pod's JSON.

Run: python bench/storage.py [--n 2000] [--etcd etcd://HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kybern.storage.interface import Store
from kybern.storage.registry import open_store
from tests.unit.storage.etcd_server import EtcdServer

VALUE = b"x" * 1024
IN_FLIGHT = 16


async def rate(n: int, op, in_flight: int) -> float:
    """Calls of op(i) for i in range(n), in_flight at a time; returns calls per second."""
    sem = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with sem:
            await op(i)

    t0 = time.perf_counter()
    if in_flight == 1:
        for i in range(n):
            await op(i)
    else:
        await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t0)


async def bench(store: Store, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for flight in (1, IN_FLIGHT):
        tag = f"c{flight}"
        out[f"creates/s ({flight} in flight)"] = await rate(
            n, lambda i, tag=tag: store.create(f"/registry/bench/{tag}/obj-{i:06d}", VALUE), flight)
        out[f"gets/s ({flight} in flight)"] = await rate(
            n, lambda i, tag=tag: store.get(f"/registry/bench/{tag}/obj-{i:06d}"), flight)
    t0 = time.perf_counter()
    res = await store.list("/registry/bench/c1/")
    out[f"list of {len(res.kvs)} keys (ms)"] = (time.perf_counter() - t0) * 1000
    await store.close()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--etcd", default="", help="an existing etcd://HOST:PORT (default: start one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {"sqlite": await bench(open_store(f"sqlite://{tmp}/state.db"), args.n)}
        server = None
        url = args.etcd
        if not url:
            server = EtcdServer(Path(tmp) / "etcd").start()
            url = server.url()
        try:
            results["etcd"] = await bench(open_store(url + f"/bench-{int(time.time())}"), args.n)
        finally:
            if server:
                server.stop()
    print(f"# {platform.node()} python {platform.python_version()}, n={args.n}, values {len(VALUE)} B")
    print(f"| figure | {' | '.join(results)} |")
    print(f"|---|{'---|' * len(results)}")
    for fig in results["sqlite"]:
        print(f"| {fig} | " + " | ".join(f"{r[fig]:,.0f}" for r in results.values()) + " |")


if __name__ == "__main__":
    asyncio.run(main())
