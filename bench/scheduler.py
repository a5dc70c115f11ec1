"""Scheduler throughput (issue 4), printed, never asserted.

1. `kybern server --no-controllers` (API only: no scheduler, no controllers) on a
   free port in a temp dir; N Node objects created through the API with Ready
   status (no agents) and P pending pods created as fast as 16 concurrent callers go.
2. That server is stopped (SIGINT) and `kybern server` (scheduler and controllers)
   started on the same data dir with KYBERN_NODE_MONITOR_GRACE_PERIOD very high, so
   the node lifecycle controller does not mark the agent-less nodes unreachable.
3. A watch on pods (no resourceVersion: current state as ADDED, then changes)
   records when each pod is first seen with spec.nodeName; bind rate = pods bound
   between the first and the last bind seen / that time. Pods already bound before
   the watch connected are counted at the time the initial state arrived, so the
   figure errs low, not high.

5. --cycle-only: no server at all; the scheduling cycles alone (PreFilter, Filter,
   Score, assume) for the same pods over the same nodes in this process, on the
   scheduler's cache: CPU per pod of the scheduler's own work
   (--upstream-nodes-to-score: upstream's adaptive percentage without kybern's cap).

Run: python bench/scheduler.py [--nodes 1000] [--pods 10000] [--py-spy OUT [--py-spy-seconds 20]]
     python bench/scheduler.py --cycle-only [--upstream-nodes-to-score]
(--py-spy: record the scheduling server with py-spy from the first bind on;
OUT ending in .svg gives a flame graph, anything else py-spy's raw collapsed stacks.)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cluster import client_for, cpu_seconds
from kybern.client.http import Client
from kybern.client.resources import NODES, PODS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(base: Path, port: int, *extra: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "HOME": str(base), **(env_extra or {})}
    proc = subprocess.Popen([sys.executable, "-m", "kybern.cli.main", "server", "--data-dir", str(base / "data"),
                             "--port", str(port), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout
    for line in proc.stdout:
        if "kybern server at" in line:
            break
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(60)


def node(i: int) -> dict:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    res = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"fake-{i:04d}", "labels": {"kubernetes.io/hostname": f"fake-{i:04d}",
                                                              "kubernetes.io/os": "linux"}},
            "status": {"capacity": res, "allocatable": res,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "bench node", "lastHeartbeatTime": now,
                                       "lastTransitionTime": now}],
                       "addresses": [{"type": "InternalIP", "address": f"10.200.{i // 250}.{i % 250 + 1}"}]}}


def pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i:05d}"},
            "spec": {"containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"]}]}}


async def create_all(c: Client, res, objs: list[dict], ns: str | None, width: int = 16) -> float:
    it = iter(objs)
    t0 = time.monotonic()

    async def worker() -> None:
        for o in it:
            await c.create(res, o, ns) if ns else await c.create(res, o)
    await asyncio.gather(*(worker() for _ in range(width)))
    return time.monotonic() - t0


async def populate(base: Path, port: int, nodes: int, pods: int) -> None:
    proc = start_server(base, port, "--no-controllers")
    c = client_for(base / "data" / "kubeconfig", base / "data" / "pki" / "ca.crt")
    try:
        took = await create_all(c, NODES, [node(i) for i in range(nodes)], None)
        print(f"  {nodes} Nodes created in {took:.1f} s ({nodes / took:.0f}/s)")
        took = await create_all(c, PODS, [pod(i) for i in range(pods)], "default")
        print(f"  {pods} pods created (scheduler stopped) in {took:.1f} s ({pods / took:.0f}/s)")
    finally:
        await c.close()
        stop(proc)


async def measure(base: Path, port: int, pods: int, spy: str | None = None, spy_seconds: int = 20,
                  server_args: tuple[str, ...] = (), separate: bool = False) -> None:
    t_spawn = time.monotonic()
    proc = start_server(base, port, *server_args, *(("--no-scheduler",) if separate else ()),
                        env_extra={"KYBERN_NODE_MONITOR_GRACE_PERIOD": "1000000000"})
    sched = None
    if separate:  # kube-scheduler's shape: its own process, an API client like any other
        sched = subprocess.Popen([sys.executable, "-m", "kybern.cli.main", "scheduler", "--server",  # noqa: ASYNC220
                                  f"https://127.0.0.1:{port}", "--token",
                                  (base / "data" / "admin.token").read_text().strip(),
                                  "--ca-file", str(base / "data" / "pki" / "ca.crt")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    sched_ps = psutil.Process(sched.pid) if sched else None
    cpu_first = own_first = 0.0
    t_ready = time.monotonic()
    spy_proc = None
    c = client_for(base / "data" / "kubeconfig", base / "data" / "pki" / "ca.crt")
    bound: dict[str, float] = {}
    per_node: dict[str, int] = {}
    try:
        async for ev in c.watch(PODS, "default", timeout_seconds=600):
            o = ev["object"]
            if ev["type"] == "ERROR":
                raise RuntimeError(f"watch failed: {o}")
            if ev["type"] not in ("ADDED", "MODIFIED"):
                continue
            name = o["metadata"]["name"]
            nn = (o.get("spec") or {}).get("nodeName")
            if nn and name not in bound:
                if not bound:
                    cpu_first, own_first = cpu_seconds(ps), time.process_time()
                    sched_first = cpu_seconds(sched_ps) if sched_ps else 0.0
                    if spy:  # the bind phase only, not the informers' initial lists
                        fmt = "flamegraph" if spy.endswith(".svg") else "raw"
                        spy_proc = subprocess.Popen(  # noqa: ASYNC220 - started, not waited for
                            ["py-spy", "record", "--pid", str(proc.pid), "-d", str(spy_seconds),
                             "--format", fmt, "-o", spy], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                bound[name] = time.monotonic()
                per_node[nn] = per_node.get(nn, 0) + 1
            if len(bound) >= pods:
                break
        cpu = cpu_seconds(ps) - cpu_first
        sched_cpu = cpu_seconds(sched_ps) - sched_first if sched_ps else 0.0
        own = time.process_time() - own_first
        times = sorted(bound.values())
        span = times[-1] - times[0]
        print(f"  server spawned -> ready {t_ready - t_spawn:.2f} s; ready -> first bind seen "
              f"{times[0] - t_ready:.2f} s")
        print(f"  {len(times)} pods bound: first -> last bind {span:.2f} s = {(len(times) - 1) / span:.0f} pods/s")
        print(f"  server ready -> all bound {times[-1] - t_ready:.2f} s = {len(times) / (times[-1] - t_ready):.0f} pods/s")
        print(f"  CPU first -> last bind: server {cpu:.1f} s ({1000 * cpu / len(times):.2f} ms per pod, "
              f"{100 * cpu / span:.0f}% of a core), this bench's watch {own:.1f} s")
        if sched_ps:
            print(f"  CPU of the separate scheduler process: {sched_cpu:.1f} s ({1000 * sched_cpu / len(times):.2f} ms "
                  f"per pod, {100 * sched_cpu / span:.0f}% of a core)")
        vals = sorted(per_node.values())
        print(f"  spread: {len(per_node)} nodes used, pods per node min {vals[0]} max {vals[-1]}")
    finally:
        await c.close()
        if spy_proc is not None:
            spy_proc.wait()
        if sched is not None:
            stop(sched)
        stop(proc)


async def cycles_only(nodes: int, pods: int, upstream: bool) -> None:
    from kybern.scheduler.framework import PodInfo
    from kybern.scheduler.scheduler import Scheduler

    s = Scheduler(Client("http://127.0.0.1:9"), **({"max_nodes_to_score": None} if upstream else {}))  # never called
    for i in range(nodes):
        s.cache.set_node(node(i))
    objs = []
    for i in range(pods):
        o = pod(i)
        o["metadata"].update(namespace="default", uid=f"uid-{i}")
        objs.append(o)
    t0 = time.process_time()
    for o in objs:
        pi = PodInfo(o)
        host, msg = s.find_host(pi, s.cache.node_list())
        assert host, msg
        s.cache.assume(pi, host)
    took = time.process_time() - t0
    await s.client.close()
    print(f"  {pods} cycles over {nodes} nodes: {took:.2f} s CPU = {1000 * took / pods:.3f} ms per pod "
          f"({pods / took:.0f} pods/s on one core), load average {os.getloadavg()[0]:.2f}")


async def main(nodes: int, pods: int, spy: str | None, spy_seconds: int, server_args: tuple[str, ...],
               separate: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        port = free_port()
        await populate(base, port, nodes, pods)
        print(f"  load average before the bind phase: {os.getloadavg()[0]:.2f}")
        await measure(base, port, pods, spy, spy_seconds, server_args, separate)
        print(f"  load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--py-spy", dest="spy", default=None, help="py-spy output file for the scheduling server")
    ap.add_argument("--py-spy-seconds", dest="spy_seconds", type=int, default=20)
    ap.add_argument("--server-arg", dest="server_args", action="append", default=[],
                    help="extra argument for the scheduling `kybern server` (repeatable)")
    ap.add_argument("--separate-scheduler", action="store_true",
                    help="run the scheduler as its own `kybern scheduler` process (server --no-scheduler)")
    ap.add_argument("--cycle-only", action="store_true", help="only the scheduling cycles, in this process")
    ap.add_argument("--upstream-nodes-to-score", action="store_true",
                    help="with --cycle-only: score upstream's adaptive share of nodes (no cap at 100)")
    args = ap.parse_args()
    if args.cycle_only:
        asyncio.run(cycles_only(args.nodes, args.pods, args.upstream_nodes_to_score))
        sys.exit(0)
    asyncio.run(main(args.nodes, args.pods, args.spy, args.spy_seconds, tuple(args.server_args),
                     args.separate_scheduler))
