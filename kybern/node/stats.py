"""How much CPU and memory the node and each container use: the agent's
cAdvisor in miniature, feeding `/stats/summary` and `/metrics/resource`.

Every `interval` seconds (10 s, as the kubelet's housekeeping; the environment
variable KYBERN_STATS_INTERVAL shortens it for tests) the collector samples:
- the node: CPU seconds spent busy (all of `psutil.cpu_times()` but idle and
  iowait) and its working set (total minus available memory);
- each running container: its cgroup when the runtime has one
  (`runtime.container_usage`: the kernel's CPU counter and the working set,
  usage minus inactive file pages, as the kubelet computes it); otherwise the
  process tree under the container's main pid, CPU seconds as user+system of
  every live process plus what each reaped of its children, memory as the sum
  of resident sets.

Rates (`usageNanoCores`) are the CPU-time delta between two samples divided by
the wall time between them, as cAdvisor does; a container seen once has no
rate yet (upstream omits it too, so metrics-server skips such pods until the
next sample). Without root or cgroups the process tree is the only boundary
we have; it misses processes that left the tree and counts shared pages twice.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psutil

from kybern.node.runtimes.base import RUNNING

if TYPE_CHECKING:
    from kybern.node.agent import NodeAgent

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 10.0


@dataclass
class Usage:
    """One container (or the node) at one sample."""

    cpu_seconds: float  # cumulative core-seconds
    memory_bytes: int  # working set
    time: float  # when sampled (epoch seconds)
    nano_cores: int | None = None  # rate over the last interval; None until a second sample


@dataclass
class PodUsage:
    namespace: str
    name: str
    uid: str
    start_time: float
    containers: dict[str, tuple[Usage, float]] = field(default_factory=dict)  # name -> (usage, started_at)


@dataclass
class Snapshot:
    time: float
    window: float  # seconds between this sample and the previous one (0 for the first)
    node: Usage
    pods: list[PodUsage]


def tree_usage(pid: int, children: dict[int, list[int]]) -> tuple[float, int]:
    """(cpu seconds, resident bytes) of `pid` and its descendants."""
    cpu, mem = 0.0, 0
    stack = [pid]
    seen: set[int] = set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            proc = psutil.Process(p)
            with proc.oneshot():
                t = proc.cpu_times()
                cpu += t.user + t.system + t.children_user + t.children_system
                mem += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        stack.extend(children.get(p, ()))
    return cpu, mem


def node_usage() -> tuple[float, int]:
    t = psutil.cpu_times()
    busy = sum(t) - t.idle - getattr(t, "iowait", 0.0)
    vm = psutil.virtual_memory()
    return busy, vm.total - vm.available


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for p in psutil.process_iter(["pid", "ppid"]):
        info = p.info
        if info.get("ppid") is not None:
            out.setdefault(info["ppid"], []).append(info["pid"])
    return out


@dataclass
class _Target:
    namespace: str
    name: str
    uid: str
    start_time: float
    containers: list[tuple[str, str, int, float]]  # (name, container id, pid, started_at)


ContainerUsage = Callable[[str], "tuple[float, int] | None"]  # container id -> (cpu s, working set)


def _measure(targets: list[_Target], from_cgroup: ContainerUsage | None = None) -> tuple[Usage, dict[str, Usage]]:
    """Runs in a thread: reads cgroups or /proc for the node and every target container."""
    now = time.time()
    busy, ws = node_usage()
    children: dict[int, list[int]] | None = None  # built only if some container has no cgroup
    out: dict[str, Usage] = {}
    for t in targets:
        for _name, cid, pid, _started in t.containers:
            got = from_cgroup(cid) if from_cgroup is not None else None
            if got is None:
                if children is None:
                    children = _children_map()
                got = tree_usage(pid, children)
            out[cid] = Usage(got[0], got[1], now)
    return Usage(busy, ws, now), out


class StatsCollector:
    def __init__(self, agent: NodeAgent, interval: float | None = None) -> None:
        self.agent = agent
        self.interval = interval if interval is not None else \
            float(os.environ.get("KYBERN_STATS_INTERVAL") or DEFAULT_INTERVAL)
        self.snapshot: Snapshot | None = None
        self._prev_node: Usage | None = None
        self._prev: dict[str, Usage] = {}  # by container id
        self._max_cpu: dict[str, float] = {}  # keeps each container's counter monotonic
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="node-stats")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("stats sample failed")
            await asyncio.sleep(self.interval)

    def _targets(self) -> list[_Target]:
        targets = []
        for w in list(self.agent.workers.values()):
            pod = w.pod
            if pod is None:
                continue
            containers = []
            for name, v in w.views.items():
                cs = v.current
                if cs is not None and cs.state == RUNNING and cs.pid:
                    containers.append((name, cs.id, cs.pid, cs.started_at or cs.created_at))
            if containers:
                start = min(c[3] for c in containers)
                targets.append(_Target(w.namespace, w.name, w.uid, start, containers))
        return targets

    async def sample(self) -> Snapshot:
        targets = self._targets()  # read on the loop; /proc is read in a thread
        from_cgroup = getattr(self.agent.runtime, "container_usage", None)
        node, by_cid = await asyncio.to_thread(_measure, targets, from_cgroup)
        node.nano_cores = _rate(self._prev_node, node)
        window = node.time - self._prev_node.time if self._prev_node else 0.0
        pods = []
        for t in targets:
            pu = PodUsage(t.namespace, t.name, t.uid, t.start_time)
            for name, cid, _pid, started in t.containers:
                u = by_cid.get(cid)
                if u is None:
                    continue
                u.cpu_seconds = max(u.cpu_seconds, self._max_cpu.get(cid, 0.0))
                self._max_cpu[cid] = u.cpu_seconds
                u.nano_cores = _rate(self._prev.get(cid), u)
                pu.containers[name] = (u, started)
            pods.append(pu)
        self._prev_node, self._prev = node, by_cid
        self._max_cpu = {cid: v for cid, v in self._max_cpu.items() if cid in by_cid}
        self.snapshot = Snapshot(node.time, window, node, pods)
        return self.snapshot


def _rate(prev: Usage | None, cur: Usage) -> int | None:
    if prev is None or cur.time <= prev.time:
        return None
    return max(0, int((cur.cpu_seconds - prev.cpu_seconds) / (cur.time - prev.time) * 1e9))


# -- the two wire formats ---------------------------------------------------------
def _ts(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {"time": _ts(u.time), "usageCoreNanoSeconds": round(u.cpu_seconds * 1e9)}
    if u.nano_cores is not None:
        out["usageNanoCores"] = u.nano_cores
    return out


def _mem(u: Usage, available: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"time": _ts(u.time), "usageBytes": u.memory_bytes,
                           "workingSetBytes": u.memory_bytes, "rssBytes": u.memory_bytes,
                           "pageFaults": 0, "majorPageFaults": 0}
    if available is not None:
        out["availableBytes"] = available
    return out


def summary(snap: Snapshot, node_name: str, boot_time: float) -> dict[str, Any]:
    """The kubelet's Summary API (stats/v1alpha1 Summary). `windowSeconds` is a
    kybern addition: the interval the rates were computed over."""
    vm_total = psutil.virtual_memory().total
    pods = []
    for p in snap.pods:
        containers = []
        cpu_total, mem_total, rate_total, complete = 0.0, 0, 0, True
        for name, (u, started) in p.containers.items():
            containers.append({"name": name, "startTime": _ts(started), "cpu": _cpu(u), "memory": _mem(u)})
            cpu_total += u.cpu_seconds
            mem_total += u.memory_bytes
            if u.nano_cores is None:
                complete = False
            else:
                rate_total += u.nano_cores
        pod_usage = Usage(cpu_total, mem_total, snap.time, rate_total if complete else None)
        pods.append({"podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
                     "startTime": _ts(p.start_time), "containers": containers,
                     "cpu": _cpu(pod_usage), "memory": _mem(pod_usage)})
    return {"node": {"nodeName": node_name, "startTime": _ts(boot_time), "cpu": _cpu(snap.node),
                     "memory": _mem(snap.node, vm_total - snap.node.memory_bytes), "systemContainers": []},
            "pods": pods, "windowSeconds": round(snap.window, 3)}


_HELP = [
    ("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the container in core-seconds"),
    ("container_memory_working_set_bytes", "gauge", "Current working set of the container in bytes"),
    ("container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds"),
    ("node_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the node in core-seconds"),
    ("node_memory_working_set_bytes", "gauge", "Current working set of the node in bytes"),
    ("pod_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the pod in core-seconds"),
    ("pod_memory_working_set_bytes", "gauge", "Current working set of the pod in bytes"),
]


SCRAPE_ERROR_HELP = ("# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container "
                     "metrics, 0 otherwise")


def _num(v: float) -> str:
    return repr(round(v, 6))


def _label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus(snap: Snapshot) -> str:
    """The kubelet's /metrics/resource: cumulative counters and gauges with
    millisecond timestamps, in the text exposition format."""
    ms = int(snap.time * 1000)
    series: dict[str, list[str]] = {name: [] for name, _t, _h in _HELP}
    series["node_cpu_usage_seconds_total"].append(f"node_cpu_usage_seconds_total {_num(snap.node.cpu_seconds)} {ms}")
    series["node_memory_working_set_bytes"].append(
        f"node_memory_working_set_bytes {snap.node.memory_bytes} {ms}")
    for p in snap.pods:
        pl = f'namespace="{_label(p.namespace)}",pod="{_label(p.name)}"'
        cpu, mem = 0.0, 0
        for name, (u, started) in p.containers.items():
            cl = f'container="{_label(name)}",{pl}'
            series["container_cpu_usage_seconds_total"].append(
                f"container_cpu_usage_seconds_total{{{cl}}} {_num(u.cpu_seconds)} {ms}")
            series["container_memory_working_set_bytes"].append(
                f"container_memory_working_set_bytes{{{cl}}} {u.memory_bytes} {ms}")
            series["container_start_time_seconds"].append(
                f"container_start_time_seconds{{{cl}}} {_num(started)} {int(started * 1000)}")
            cpu += u.cpu_seconds
            mem += u.memory_bytes
        series["pod_cpu_usage_seconds_total"].append(f"pod_cpu_usage_seconds_total{{{pl}}} {_num(cpu)} {ms}")
        series["pod_memory_working_set_bytes"].append(f"pod_memory_working_set_bytes{{{pl}}} {mem} {ms}")
    lines = []
    for name, typ, help_ in _HELP:
        lines.append(f"# HELP {name} [STABLE] {help_}")
        lines.append(f"# TYPE {name} {typ}")
        lines.extend(series[name])
    lines += [SCRAPE_ERROR_HELP, "# TYPE resource_scrape_error gauge", "resource_scrape_error 0"]
    return "\n".join(lines) + "\n"
