"""The agent's usage sampling on real processes: a CPU-burning process tree is
measured with its children, rates come from two samples, and both wire formats
(Summary API, Prometheus /metrics/resource) carry the numbers."""

from __future__ import annotations

import subprocess
import sys
import time

from kybern.node import stats

BURN = "import subprocess, sys, time\n" \
       "subprocess.Popen([sys.executable, '-c', 'import time\\nend = time.time() + 1.5\\nwhile time.time() < end: pass'])\n" \
       "time.sleep(3)\n"


def test_tree_usage_counts_children_and_rates_need_two_samples() -> None:
    proc = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        time.sleep(0.3)
        cpu0, mem0 = stats.tree_usage(proc.pid, stats._children_map())
        first = stats.Usage(cpu0, mem0, time.time())
        time.sleep(1.0)
        cpu1, mem1 = stats.tree_usage(proc.pid, stats._children_map())
        second = stats.Usage(cpu1, mem1, time.time())
    finally:
        proc.kill()
        proc.wait()
    assert mem0 > 1_000_000 and mem1 > 1_000_000  # two interpreters' resident sets
    rate = stats._rate(first, second)
    assert rate is not None and rate > 300_000_000  # the child burns most of a core
    assert stats._rate(None, second) is None


def test_wire_formats() -> None:
    node = stats.Usage(100.5, 2 * 2**30, 1_700_000_000.0, 1_500_000_000)
    c = stats.Usage(3.25, 10 * 2**20, 1_700_000_000.0, 250_000_000)
    pod = stats.PodUsage("default", "web", "uid-1", 1_699_999_000.0, {"app": (c, 1_699_999_000.0)})
    snap = stats.Snapshot(1_700_000_000.0, 10.0, node, [pod])
    s = stats.summary(snap, "node-1", 1_600_000_000.0)
    assert s["node"]["cpu"]["usageNanoCores"] == 1_500_000_000 and s["windowSeconds"] == 10.0
    p = s["pods"][0]
    assert p["podRef"] == {"name": "web", "namespace": "default", "uid": "uid-1"}
    assert p["containers"][0]["cpu"]["usageNanoCores"] == 250_000_000
    assert p["cpu"]["usageNanoCores"] == 250_000_000 and p["memory"]["workingSetBytes"] == 10 * 2**20
    text = stats.prometheus(snap)
    assert 'container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 3.25 1700000000000' \
        in text
    assert "node_cpu_usage_seconds_total 100.5 1700000000000" in text
    assert 'pod_memory_working_set_bytes{namespace="default",pod="web"} 10485760' in text
    assert "# TYPE node_memory_working_set_bytes gauge" in text
