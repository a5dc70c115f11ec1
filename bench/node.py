"""Node-agent figures (issue 4), printed, never asserted:

1. Pod startup latency, 200 bare pods (`sleep 3600`) on the one agent of a fresh
   `kybern up --max-pods N` (process runtime; N = pods + 10, since the default
   110 would refuse some; its node agent is a child process, or inside it with
   `--up-arg=--agent-in-process`), created by 16 concurrent callers, with spec.nodeName
   (`--bind nodename`, scheduler skipped) or through the scheduler
   (`--bind scheduler`); `--pod-network host|cni|auto` picks the pod network:
   - API clock: creationTimestamp -> the last containerStatuses[].state.running
     .startedAt (both have 1-second resolution, so each sample is a whole number);
   - client clock, from the create sent (an upper bound: creationTimestamp is
     set after the request arrives) and from the create returned (a lower bound)
     -> a watch delivered the pod with all containers running (sub-second
     resolution). The 16 callers have 16 connections, so no create waits for one.
2. Agent idle overhead: `kybern server` plus one `kybern agent` process (so the
   agent is measured alone), 50 idle pods running on it; the agent process's own
   CPU (user + system, not its pods') over `--idle-seconds` and its RSS.

With BENCH_SIGNAL_AGENT=1 the agent gets SIGUSR1 at the first create and SIGUSR2
once all run; with PYTHONPATH=bench/profile_agent its sitecustomize.py profiles the
agent's loop between them (cProfile counting CPU time attributes it reliably; py-spy's
--nonblocking line numbers were seen to pile samples on the wrong line).

With BENCH_STRACE=OUT the agent runs under `strace -f -o OUT` from just before the first
create (BENCH_STRACE_ARGS: strace's other arguments, default `-c`, a count per system call;
e.g. `-T -e trace=mkdir,openat` for each call's duration): syscall counts per pod, and which
calls block. Latency figures from such a run mean nothing.

With BENCH_PERF=OUT the whole machine is sampled by `perf record -a -g -o OUT` (kernel
and every process: where the CPU of a CNI pod goes, netns and veth work included) from
just before the first create to all running; `perf report -i OUT --sort comm,dso`.

Run: python bench/node.py [--pods 200] [--rate PODS_PER_S] [--bind nodename|scheduler] [--pod-network auto|cni|host] [--idle-pods 50] [--idle-seconds 60] [--ingress] [--py-spy OUT] [--skip-startup] [--skip-idle]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cluster import client_for
from bench.scheduler import free_port, stop
from kybern.client.http import Client
from kybern.client.resources import NODES, PODS

AUTOMOUNT_TOKEN = True  # --no-token-volume: pods without the service account token volume


def pod(name: str, node: str | None = None, node_name: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"]}],
                  "terminationGracePeriodSeconds": 1}
    if not AUTOMOUNT_TOKEN:
        spec["automountServiceAccountToken"] = False
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    if node_name:  # bound at create, as a static assignment: the scheduler is skipped
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def ts(s: str) -> float:
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def all_running(o: dict) -> bool:
    cs = (o.get("status") or {}).get("containerStatuses") or []
    want = len((o.get("spec") or {}).get("containers") or [])
    return len(cs) == want and all("running" in (c.get("state") or {}) for c in cs)


def pct(vals: list[float], p: float) -> float:
    vals = sorted(vals)
    return vals[min(len(vals) - 1, max(0, round(p / 100 * len(vals) + 0.5) - 1))]


async def node_ready(c: Client, name: str | None = None, timeout: float = 60) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for n in (await c.list(NODES))["items"]:
            if name and n["metadata"]["name"] != name:
                continue
            if any(x["type"] == "Ready" and x["status"] == "True"
                   for x in (n.get("status") or {}).get("conditions") or []):
                return
        await asyncio.sleep(0.2)
    raise TimeoutError("node not Ready")


async def delete_pods(c: Client, names: list[str]) -> None:
    sem = asyncio.Semaphore(16)

    async def one(n: str) -> None:
        async with sem:
            await c.delete(PODS, n, "default")
    await asyncio.gather(*(one(n) for n in names))
    t0 = time.monotonic()
    while (await c.list(PODS, "default"))["items"] and time.monotonic() - t0 < 120:
        await asyncio.sleep(0.5)


def _busy(t: Any) -> float:
    """CPU seconds the machine spent not idle (/proc/stat), all cores."""
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def _kernel_workers() -> dict[int, float]:
    """CPU seconds so far of each kernel worker thread (kworker/*), by pid."""
    out = {}
    for p in psutil.process_iter(["name", "cpu_times"]):
        if (p.info["name"] or "").startswith("kworker") and p.info["cpu_times"] is not None:
            out[p.pid] = p.info["cpu_times"].user + p.info["cpu_times"].system
    return out


async def startup(n_pods: int, bind: str, pod_network: str, up_args: list[str], py_spy: str = "",
                  py_spy_gil: bool = False, rate: float = 0.0, ingress: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        env = {**os.environ, "HOME": str(base)}
        proc = subprocess.Popen([sys.executable, "-m", "kybern.cli.main", "up",  # noqa: ASYNC220
                                 "--data-dir", str(base / "data"),
                                 "--port", "0", "--kubeconfig", str(base / "kubeconfig"), "--node-name", "bench",
                                 *([] if ingress else ["--no-ingress"]), "--max-pods", str(n_pods + 10),
                                 "--pod-network", pod_network,
                                 *up_args],
                                env=env, stdout=subprocess.PIPE, stderr=open(base / "up.log", "w"),  # noqa: ASYNC230, SIM115
                                text=True)
        assert proc.stdout
        for line in proc.stdout:
            if re.search(r"API at https://", line):
                break
        else:
            raise RuntimeError("kybern up exited before it was ready:\n" + (base / "up.log").read_text()[-3000:])
        try:
            c = client_for(base / "kubeconfig", base / "data" / "pki" / "ca.crt", connections=16)
            await node_ready(c)
            rv = (await c.list(PODS, "default"))["metadata"]["resourceVersion"]
            names = [f"s-{i:03d}" for i in range(n_pods)]
            created: dict[str, float] = {}
            sent: dict[str, float] = {}
            seen: dict[str, float] = {}
            api_lat: dict[str, float] = {}

            def note(o: dict) -> None:
                name = o["metadata"]["name"]
                if name not in seen and all_running(o):
                    seen[name] = time.monotonic()
                    started = max(ts(x["state"]["running"]["startedAt"]) for x in o["status"]["containerStatuses"])
                    api_lat[name] = started - ts(o["metadata"]["creationTimestamp"])

            async def watcher() -> None:
                watch_rv = rv
                while len(seen) < n_pods:
                    async for ev in c.watch(PODS, "default", resource_version=watch_rv, timeout_seconds=300):
                        if ev["type"] in ("ADDED", "MODIFIED"):
                            note(ev["object"])
                            watch_rv = ev["object"]["metadata"]["resourceVersion"]
                        elif ev["type"] == "ERROR":  # e.g. 410 Gone: relist (pods seen late, never early)
                            print(f"  watch error {ev['object'].get('message')}; relisting")
                            lst = await c.list(PODS, "default")
                            for o in lst["items"]:
                                note(o)
                            watch_rv = lst["metadata"]["resourceVersion"]
                            break
                        if len(seen) >= n_pods:
                            return
            req0 = await request_counts(c)
            w = asyncio.create_task(watcher())
            await asyncio.sleep(0.3)  # let the watch connect
            it = iter(names)
            up = psutil.Process(proc.pid)
            agent = next((p for p in up.children() if "agent" in p.cmdline()), None)
            cpu0 = up.cpu_times()
            me = psutil.Process()
            bcpu0 = me.cpu_times()
            acpu0 = agent.cpu_times() if agent else None
            # the runtime's spawn worker (spawnd.py): a live child, so not in "exited helpers"
            worker = next((p for p in (agent or up).children() if any("spawnd" in a for a in p.cmdline())), None)
            wcpu0 = worker.cpu_times() if worker else None
            # the pod-network worker (netd.py), the same way
            netd = next((p for p in (agent or up).children()
                         if any(a.endswith("network/netd.py") for a in p.cmdline())), None)
            ncpu0 = netd.cpu_times() if netd else None
            mcpu0, kw0 = psutil.cpu_times(), _kernel_workers()
            if os.environ.get("BENCH_SIGNAL_AGENT") and agent:  # SIGUSR1 at the first create, SIGUSR2 when all run
                agent.send_signal(signal.SIGUSR1)
            t0 = time.monotonic()
            spies = []
            if py_spy:  # raw stacks from the first create to all running: OUT (the agent) and OUT.up
                for pid, out in ((agent or up).pid, py_spy), *(((up.pid, py_spy + ".up"),) if agent else ()):
                    spies.append(subprocess.Popen(  # noqa: ASYNC220
                        ["py-spy", "record", "--pid", str(pid), "-r", os.environ.get("BENCH_PY_SPY_RATE", "250"),
                         "--format", os.environ.get("BENCH_PY_SPY_FORMAT", "raw"), "--nonblocking", "--threads",
                         "-o", out, *os.environ.get("BENCH_PY_SPY_ARGS", "").split(),
                         *(["--gil"] if py_spy_gil else [])],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

            if os.environ.get("BENCH_STRACE") and agent:  # the agent's system calls, counted: OUT
                spies.append(subprocess.Popen(["strace", *os.environ.get("BENCH_STRACE_ARGS", "-c").split(), "-f",  # noqa: ASYNC220
                                               "-o", os.environ["BENCH_STRACE"], "-p", str(agent.pid)],
                                              stderr=subprocess.DEVNULL))
                await asyncio.sleep(0.5)

            if os.environ.get("BENCH_PERF"):
                spies.append(subprocess.Popen(["perf", "record", "-a", "-g", "-q", "-o", os.environ["BENCH_PERF"]],  # noqa: ASYNC220
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                await asyncio.sleep(0.5)

            async def creator() -> None:
                for n in it:
                    if rate:  # paced: the i-th pod is sent at t0 + i/rate (open loop)
                        await asyncio.sleep(max(0.0, t0 + names.index(n) / rate - time.monotonic()))
                    sent[n] = time.monotonic()
                    await c.create(PODS, pod(n, node_name="bench" if bind == "nodename" else None), "default")
                    created[n] = time.monotonic()
            await asyncio.gather(*(creator() for _ in range(16)))
            t_created = time.monotonic() - t0
            await asyncio.wait_for(w, 300)
            cpu1 = up.cpu_times()
            bcpu1 = me.cpu_times()
            acpu1 = agent.cpu_times() if agent else None
            wcpu1 = worker.cpu_times() if worker else None
            ncpu1 = netd.cpu_times() if netd else None
            mcpu1, t_m1, kw1 = psutil.cpu_times(), time.monotonic(), _kernel_workers()
            if os.environ.get("BENCH_SIGNAL_AGENT") and agent:
                agent.send_signal(signal.SIGUSR2)
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            req1 = await request_counts(c)
            t_all = max(seen.values()) - t0
            watch_lat = [seen[n] - created[n] for n in names]
            sent_lat = [seen[n] - sent[n] for n in names]
            api = list(api_lat.values())
            how = f"paced at {rate:g}/s" if rate else "as fast as 16 callers go"
            print(f"  {n_pods} bare pods ({bind}, pod network {pod_network}, {how}) created in {t_created:.2f} s; "
                  f"all running {t_all:.2f} s after the first create")
            print(f"  API clock (creationTimestamp -> startedAt, 1 s resolution): p50 {pct(api, 50):.0f} s, "
                  f"p99 {pct(api, 99):.0f} s, max {max(api):.0f} s; "
                  f"histogram {dict(sorted(collections.Counter(int(x) for x in api).items()))}")
            print(f"  client clock (create sent -> watch saw all containers running): "
                  f"p50 {pct(sent_lat, 50):.3f} s, p99 {pct(sent_lat, 99):.3f} s, max {max(sent_lat):.3f} s")
            print(f"  client clock (create returned -> watch saw all containers running): "
                  f"p50 {pct(watch_lat, 50):.3f} s, p99 {pct(watch_lat, 99):.3f} s, max {max(watch_lat):.3f} s")
            print("  CPU from the first create to all running:")
            for what, t0_, t1_ in (("`kybern up` (apiserver, controllers)", cpu0, cpu1),
                                   ("node agent process", acpu0, acpu1),
                                   ("its spawn worker (spawnd)", wcpu0, wcpu1),
                                   ("its pod-network worker (netd)", ncpu0, ncpu1),
                                   ("this bench (creates, watch)", bcpu0, bcpu1)):
                if t0_ is None or t1_ is None:
                    continue
                own = (t1_.user - t0_.user) + (t1_.system - t0_.system)
                usr = t1_.user - t0_.user
                kids = (t1_.children_user - t0_.children_user) + (t1_.children_system - t0_.children_system)
                print(f"    {what}: {own:.2f} s ({1000 * own / n_pods:.1f} ms per pod; user {usr:.2f} s, "
                      f"system {own - usr:.2f} s); its exited helpers (CNI plugins...) {kids:.2f} s")
            busy = _busy(mcpu1) - _busy(mcpu0)
            print(f"    the whole machine, busy (every process and kernel thread, other sessions' too): {busy:.2f} s "
                  f"({1000 * busy / n_pods:.1f} ms per pod) of {psutil.cpu_count() * (t_m1 - t0):.2f} s")
            kw = sum(v - kw0.get(k, 0.0) for k, v in kw1.items())
            print(f"    kernel worker threads (kworker: cgroup, netns and IPv6 upkeep; other sessions' too): {kw:.2f} s "
                  f"({1000 * kw / n_pods:.1f} ms per pod)")
            per_pod = {k: (v - req0.get(k, 0)) / n_pods for k, v in req1.items()}
            print("  API requests per pod in that time (apiserver_request_total, all clients): " + ", ".join(
                f"{verb} {res}{'/' + sub if sub else ''} {x:.2f}"
                for (verb, res, sub), x in sorted(per_pod.items(), key=lambda kv: -kv[1]) if x >= 0.05))
            await delete_pods(c, names)
        finally:
            await c.close()
            stop(proc)


async def request_counts(c: Client) -> dict[tuple[str, str, str], float]:
    """apiserver_request_total summed by (verb, resource, subresource), from /metrics."""
    text = await c.request("GET", "/metrics")
    out: dict[tuple[str, str, str], float] = collections.defaultdict(float)
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            out[(labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))] += \
                float(line.rsplit(" ", 1)[1])
    return out


async def idle(n_pods: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        port = free_port()
        env = {**os.environ, "HOME": str(base)}
        server = subprocess.Popen([sys.executable, "-m", "kybern.cli.main", "server", "--data-dir",  # noqa: ASYNC220
                                   str(base / "data"), "--port", str(port)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert server.stdout
        line = ""
        for line in server.stdout:
            if "kybern server at" in line:
                break
        m = re.search(r"at (\S+);.*node token: (\S+)", line)
        assert m
        agent = subprocess.Popen([sys.executable, "-m", "kybern.cli.main", "agent",  # noqa: ASYNC220
                                  "--server", m.group(1),
                                  "--token", m.group(2), "--ca-file", str(base / "data" / "pki" / "ca.crt"),
                                  "--name", "idle-agent", "--data-dir", str(base / "agent")],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            c = client_for(base / "data" / "kubeconfig", base / "data" / "pki" / "ca.crt")
            await node_ready(c, "idle-agent")
            p = psutil.Process(agent.pid)
            print(f"  agent joined; RSS before pods {p.memory_info().rss / 2**20:.0f} MB")
            names = [f"i-{i:02d}" for i in range(n_pods)]
            for n in names:
                await c.create(PODS, pod(n, "idle-agent"), "default")
            t0 = time.monotonic()
            while time.monotonic() - t0 < 120:
                items = (await c.list(PODS, "default"))["items"]
                if sum(1 for o in items if all_running(o)) == n_pods:
                    break
                await asyncio.sleep(0.5)
            print(f"  {n_pods} pods running in {time.monotonic() - t0:.1f} s; settling 15 s")
            await asyncio.sleep(15)
            w = next((k for k in p.children() if any("spawnd" in x for x in k.cmdline())), None)
            a, wa = p.cpu_times(), (w.cpu_times() if w else None)
            await asyncio.sleep(seconds)
            b, wb = p.cpu_times(), (w.cpu_times() if w else None)
            used = (b.user - a.user) + (b.system - a.system)
            rss = p.memory_info().rss / 2**20
            print(f"  agent process alone, {n_pods} idle pods: CPU {100 * used / seconds:.2f}% of a core over "
                  f"{seconds:.0f} s; RSS {rss:.0f} MB (threads {p.num_threads()})")
            if w is not None and wa is not None and wb is not None:  # the runtime's spawn worker (spawnd.py)
                wused = (wb.user - wa.user) + (wb.system - wa.system)
                wm = w.memory_full_info()
                pm = p.memory_full_info()
                print(f"  its spawn worker: CPU {100 * wused / seconds:.2f}% of a core; RSS {wm.rss / 2**20:.0f} MB "
                      f"(PSS {wm.pss / 2**20:.0f} MB); agent + worker: RSS {(rss * 2**20 + wm.rss) / 2**20:.0f} MB, "
                      f"PSS {(pm.pss + wm.pss) / 2**20:.0f} MB")
            nd = next((k for k in p.children() if any(a.endswith("network/netd.py") for a in k.cmdline())), None)
            if nd is not None:  # the pod-network worker (netd.py), with the CNI network
                nm = nd.memory_full_info()
                print(f"  its pod-network worker: RSS {nm.rss / 2**20:.0f} MB (PSS {nm.pss / 2**20:.0f} MB)")
            await delete_pods(c, names)
        finally:
            await c.close()
            agent.send_signal(signal.SIGINT)
            try:
                agent.wait(60)
            except subprocess.TimeoutExpired:
                agent.terminate()
                agent.wait(60)
            stop(server)


async def main(args: argparse.Namespace) -> None:
    if not args.skip_startup:
        await startup(args.pods, args.bind, args.pod_network, args.up_arg, args.py_spy, args.py_spy_gil,
                      args.rate, ingress=args.ingress)
    if not args.skip_idle:
        await idle(args.idle_pods, args.idle_seconds)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--bind", choices=["nodename", "scheduler"], default="nodename",
                    help="pods created with spec.nodeName (scheduler skipped) or left to the scheduler")
    ap.add_argument("--pod-network", choices=["auto", "cni", "host"], default="auto",
                    help="the agent's pod network (auto: cni as root)")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="create the pods at this many per second (default: a burst, as fast as 16 callers go)")
    ap.add_argument("--up-arg", action="append", default=[], help="extra argument for `kybern up` (repeatable)")
    ap.add_argument("--idle-pods", type=int, default=50)
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--py-spy", default="", metavar="OUT",
                    help="record the node agent (or `kybern up` with the agent inside) with py-spy (raw stacks, "
                         "--nonblocking; `kybern up` itself to OUT.up) from the first create to all running")
    ap.add_argument("--py-spy-gil", action="store_true", help="with --py-spy: only the thread holding the GIL")
    ap.add_argument("--ingress", action="store_true",
                    help="keep kybern up's ingress controller on, as users run it (off by default, as earlier figures)")
    ap.add_argument("--skip-startup", action="store_true")
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--no-token-volume", action="store_true",
                    help="pods with automountServiceAccountToken: false (upstream's default is to mount it), "
                         "to measure what the token volume costs")
    args = ap.parse_args()
    AUTOMOUNT_TOKEN = not args.no_token_volume
    asyncio.run(main(args))
