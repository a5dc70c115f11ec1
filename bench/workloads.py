"""Workload-controller figures (issue 5), printed, never asserted:

- a 50-replica StatefulSet (Parallel) with a volumeClaimTemplate (local-path):
  created -> all 50 pods Running, claims Bound;
- a rolling update of a 100-replica Deployment (maxSurge 25%, trivial pods):
  template changed -> rollout complete (kubectl's criteria);
- CPU of the `kybern up` process (apiserver, controllers, scheduler and node
  agent together) over 60 s with 1,000 idle Deployments (replicas 0).

Run: python bench/workloads.py [--idle-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cluster import start_up
from kybern.client.http import Client
from kybern.client.resources import (
    DEPLOYMENTS,
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    STATEFULSETS,
)

SLEEPER = {"name": "c", "image": "demo:v1", "command": ["sh", "-c", "exec sleep 3600"]}


async def wait(pred, timeout: float = 300, every: float = 0.2) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if await pred():
            return time.monotonic() - t0
        await asyncio.sleep(every)
    raise TimeoutError("benchmark condition not reached")


async def statefulset_50(c: Client) -> float:
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "big"},
           "spec": {"replicas": 50, "podManagementPolicy": "Parallel", "serviceName": "big",
                    "selector": {"matchLabels": {"app": "big"}},
                    "template": {"metadata": {"labels": {"app": "big"}},
                                 "spec": {"containers": [{**SLEEPER, "volumeMounts": [
                                     {"name": "data", "mountPath": "/data"}]}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "storageClassName": "local-path", "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "10Mi"}}}}]}}
    t0 = time.monotonic()
    await c.create(STATEFULSETS, sts, "default")

    async def done() -> bool:
        pods = (await c.list(PODS, "default", label_selector="app=big"))["items"]
        running = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
        return running == 50
    await wait(done)
    took = time.monotonic() - t0
    claims = (await c.list(PERSISTENTVOLUMECLAIMS, "default"))["items"]
    bound = sum(1 for x in claims if (x.get("status") or {}).get("phase") == "Bound")
    print(f"  StatefulSet 50 (Parallel, PVCs): all Running in {took:.2f} s; {bound}/50 claims Bound")
    await c.delete(STATEFULSETS, "big", "default")
    await wait(lambda: _count(c, "app=big", 0), timeout=120)
    return took


async def _count(c: Client, selector: str, n: int) -> bool:
    return len((await c.list(PODS, "default", label_selector=selector))["items"]) == n


async def rolling_100(c: Client) -> float:
    d = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "roll"},
         "spec": {"replicas": 100, "selector": {"matchLabels": {"app": "roll"}},
                  "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                  "template": {"metadata": {"labels": {"app": "roll"}}, "spec": {"containers": [SLEEPER]}}}}
    await c.create(DEPLOYMENTS, d, "default")

    async def complete() -> bool:
        x = await c.get(DEPLOYMENTS, "roll", "default")
        st, gen = x.get("status") or {}, x["metadata"].get("generation", 0)
        return st.get("observedGeneration", 0) >= gen and st.get("updatedReplicas") == 100 and \
            st.get("replicas") == 100 and st.get("availableReplicas") == 100
    first = await wait(complete)
    print(f"  Deployment 100: created -> available in {first:.2f} s")
    t0 = time.monotonic()
    await c.patch(DEPLOYMENTS, "roll", {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}},
                  "default")
    await asyncio.sleep(0.3)  # let observedGeneration move before judging completion
    await wait(complete)
    took = time.monotonic() - t0
    print(f"  Deployment 100 rolling update (maxSurge 25%): complete in {took:.2f} s")
    await c.delete(DEPLOYMENTS, "roll", "default")
    await wait(lambda: _count(c, "app=roll", 0), timeout=180)
    return took


async def idle_cpu(c: Client, pid: int, seconds: float) -> float:
    sem = asyncio.Semaphore(16)

    async def make(i: int) -> None:
        async with sem:
            await c.create(DEPLOYMENTS, {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "metadata": {"name": f"idle-{i}"},
                                         "spec": {"replicas": 0, "selector": {"matchLabels": {"i": str(i)}},
                                                  "template": {"metadata": {"labels": {"i": str(i)}},
                                                               "spec": {"containers": [SLEEPER]}}}},
                           "default")
    t_created = time.monotonic()
    await asyncio.gather(*(make(i) for i in range(1000)))
    proc = psutil.Process(pid)

    def cpu() -> float:
        t = proc.cpu_times()
        return t.user + t.system
    # the 1,000 ReplicaSets, their status writes and events take a while to settle:
    # wait for a quiet 5 s window (at most 3 min), then measure
    while time.monotonic() - t_created < 180:
        a = cpu()
        await asyncio.sleep(5)
        if cpu() - a < 0.25:
            break
    print(f"  1,000 idle Deployments: created and settled in {time.monotonic() - t_created:.0f} s")
    t0 = proc.cpu_times()
    await asyncio.sleep(seconds)
    t1 = proc.cpu_times()
    used = (t1.user - t0.user) + (t1.system - t0.system)
    pct = 100 * used / seconds
    print(f"  1,000 idle Deployments: kybern process CPU {pct:.2f}% of a core over {seconds:.0f} s")
    return pct


async def main(idle_seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        env = {**os.environ, "HOME": str(base), "KYBERN_LOCAL_PATH_DIR": str(base / "local-path")}
        proc, c = start_up(base, env)  # noqa: ASYNC220
        try:
            await wait(lambda: _node_ready(c), timeout=30)
            await statefulset_50(c)
            await rolling_100(c)
            await idle_cpu(c, proc.pid, idle_seconds)
        finally:
            await c.close()
            proc.terminate()
            proc.wait(60)


async def _node_ready(c: Client) -> bool:
    nodes = (await c.list(NODES))["items"]
    return any(x["type"] == "Ready" and x["status"] == "True"
               for n in nodes for x in (n.get("status") or {}).get("conditions") or [])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    args = ap.parse_args()
    asyncio.run(main(args.idle_seconds))
