"""The watch fan-out figure of bench/api.py (phase 4) alone, at a few write
rates: quicker to repeat than the whole API bench when working on watches.

Starts `kybern server --no-controllers --api-workers N` (TLS, SQLite) in a temp
dir, holds W watchers on one namespace (curl for the silent ones, 50 sampled in
this process), creates pods there at each rate for 5 s, and prints the delay
from sending a write to a sampled watcher receiving its event (p50/p99/max),
with the server's CPU and its CPU per delivery (one event to one watcher).

Run: python bench/api_watch.py [--api-workers 2] [--watchers 1000] [--rates 2,5,10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

import api  # bench/api.py, next to this file

phases: list[api.Phase] = []


class _Phase(api.Phase):
    """api.Phase, kept for the CPU per delivery."""

    def __enter__(self) -> _Phase:  # noqa: PYI034
        phases.append(self)
        super().__enter__()
        return self


api.Phase = _Phase  # type: ignore[misc]


async def run(srv: api.Server, watchers: int, rate: float, seconds: float) -> str:
    headers = {"Authorization": f"Bearer {srv.token}", "Accept": "application/json"}
    w = await api.watchers_phase(srv, headers, watchers, 50, rate, seconds)
    ph = phases[-1]
    per = ph.cpu_share * ph.wall / (rate * seconds * watchers) * 1e6
    return (f"{rate:g} writes/s: p50 {w['p50'] * 1e3:.1f} ms, p99 {w['p99'] * 1e3:.1f} ms, "
            f"max {w['max'] * 1e3:.1f} ms ({w['deliveries']}/{w['expected']} sampled deliveries); "
            f"{w['cpu']}, {per:.0f} us per delivery; load {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--api-workers", type=int, default=2)
    ap.add_argument("--watchers", type=int, default=1000)
    ap.add_argument("--rates", default="2,5,10")
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    for rate in (float(r) for r in a.rates.split(",")):
        srv = api.Server(Path(tempfile.mkdtemp(prefix="kybern-watch-")), False, a.api_workers, "")
        try:
            print(asyncio.run(run(srv, a.watchers, rate, a.seconds)), flush=True)
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
