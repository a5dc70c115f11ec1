"""Walking-skeleton figures (issue 2), printed, never asserted:

- `kybern up` to node Ready (wall clock from spawning the process),
- a 10-replica Deployment created to all its pods Running, observed by watch,
- idle RSS of the `kybern up` process (its own memory, not its pods').

Run: python bench/skeleton.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cluster import start_up  # noqa: E402
from kybern.client.resources import DEPLOYMENTS, NODES, PODS  # noqa: E402


async def one_run(base: Path) -> dict[str, float]:
    env = {**os.environ, "HOME": str(base)}
    t0 = time.monotonic()
    proc, client = start_up(base, env)
    try:
        while True:
            nodes = (await client.list(NODES))["items"]
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for n in nodes for c in n.get("status", {}).get("conditions", [])):
                break
            await asyncio.sleep(0.01)
        t_ready = time.monotonic() - t0
        await asyncio.sleep(5)
        rss_idle = psutil.Process(proc.pid).memory_info().rss / 2**20

        lst = await client.list(PODS, "default")
        dep = {"metadata": {"name": "bench"}, "spec": {
            "replicas": 10, "selector": {"matchLabels": {"app": "bench"}},
            "template": {"metadata": {"labels": {"app": "bench"}}, "spec": {"containers": [
                {"name": "c", "image": "demo:v1", "command": ["sleep", "3600"]}]}}}}
        running: set[str] = set()
        t1 = time.monotonic()
        await client.create(DEPLOYMENTS, dep, "default")
        async for ev in client.watch(PODS, "default", resource_version=lst["metadata"]["resourceVersion"],
                                     timeout_seconds=60):
            o = ev["object"]
            if ev["type"] != "DELETED" and o.get("status", {}).get("phase") == "Running":
                running.add(o["metadata"]["name"])
            if len(running) >= 10:
                break
        t_deploy = time.monotonic() - t1
        await client.delete(DEPLOYMENTS, "bench", "default")
        await asyncio.sleep(3)
        rss_after = psutil.Process(proc.pid).memory_info().rss / 2**20
        return {"up_to_ready_s": t_ready, "deploy10_running_s": t_deploy, "idle_rss_mb": rss_idle,
                "rss_after_mb": rss_after}
    finally:
        await client.close()
        proc.terminate()
        proc.wait(60)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    results = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            results.append(await one_run(Path(d)))
    for key in results[0]:
        vals = [r[key] for r in results]
        print(f"{key:22s} median {statistics.median(vals):8.2f}  min {min(vals):8.2f}  max {max(vals):8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
