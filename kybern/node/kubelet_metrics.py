"""The node agent's own `/metrics`, a subset of the kubelet's under its names:

  kubelet_node_name{node}                       1
  kubelet_running_pods                          pods with a live sandbox
  kubelet_running_containers{container_state}   containers by state (running, exited, created)
  kubelet_started_pods_total                    pods whose containers all started, since start
  kubelet_started_containers_total              container starts, since start
  kubelet_pod_start_duration_seconds            histogram: the agent first seeing a pod ->
                                                all its containers started (upstream's buckets)
  process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
  process_start_time_seconds, process_open_fds, process_max_fds

The Prometheus text format is written here, as for `/metrics/resource` (stats.py):
prometheus_client would add ~9 MB to an agent held to 60 MB with 50 pods.
"""

from __future__ import annotations

import bisect
import os
import resource
from collections import Counter
from typing import TYPE_CHECKING

import psutil

from kybern.node.runtimes.base import CREATED, EXITED, RUNNING
from kybern.node.stats import _label, _num

if TYPE_CHECKING:
    from kybern.node.agent import NodeAgent

# the kubelet's kubelet_pod_start_duration_seconds buckets
BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800,
           2700, 3600)


class KubeletMetrics:
    def __init__(self) -> None:
        self.started_containers = 0
        self._counts = [0] * (len(BUCKETS) + 1)  # per bucket, +Inf last
        self._sum = 0.0
        self._process = psutil.Process()

    def container_started(self) -> None:
        self.started_containers += 1

    def pod_started(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sum += seconds

    async def render(self, agent: NodeAgent) -> str:
        states = Counter(c.state for c in await agent.runtime.list_containers())
        running_pods = sum(1 for sb in await agent.runtime.list_pod_sandboxes() if sb.ready)
        out = [
            "# HELP kubelet_node_name [ALPHA] The node's name. The count is always 1.",
            "# TYPE kubelet_node_name gauge",
            f'kubelet_node_name{{node="{_label(agent.name)}"}} 1',
            "# HELP kubelet_running_pods [ALPHA] Number of pods that have a running pod sandbox",
            "# TYPE kubelet_running_pods gauge",
            f"kubelet_running_pods {running_pods}",
            "# HELP kubelet_running_containers [ALPHA] Number of containers currently running",
            "# TYPE kubelet_running_containers gauge",
            *(f'kubelet_running_containers{{container_state="{name}"}} {states.get(state, 0)}'
              for name, state in (("created", CREATED), ("exited", EXITED), ("running", RUNNING))),
            "# HELP kubelet_started_containers_total [ALPHA] Cumulative number of containers started",
            "# TYPE kubelet_started_containers_total counter",
            f"kubelet_started_containers_total {self.started_containers}",
            "# HELP kubelet_started_pods_total [ALPHA] Cumulative number of pods started",
            "# TYPE kubelet_started_pods_total counter",
            f"kubelet_started_pods_total {sum(self._counts)}",
            ("# HELP kubelet_pod_start_duration_seconds [ALPHA] Duration in seconds from kubelet seeing a pod "
             "for the first time to the pod starting to run"),
            "# TYPE kubelet_pod_start_duration_seconds histogram",
        ]
        total = 0
        for le, n in zip((*BUCKETS, "+Inf"), self._counts, strict=True):
            total += n
            out.append(f'kubelet_pod_start_duration_seconds_bucket{{le="{_le(le)}"}} {total}')
        out += [f"kubelet_pod_start_duration_seconds_sum {_num(self._sum)}",
                f"kubelet_pod_start_duration_seconds_count {total}"]
        out += self._process_lines()
        return "\n".join(out) + "\n"

    def _process_lines(self) -> list[str]:
        p = self._process
        with p.oneshot():
            cpu, mem, fds, started = p.cpu_times(), p.memory_info(), p.num_fds(), p.create_time()
        max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return [
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
            "# TYPE process_cpu_seconds_total counter",
            f"process_cpu_seconds_total {_num(cpu.user + cpu.system)}",
            "# HELP process_resident_memory_bytes Resident memory size in bytes.",
            "# TYPE process_resident_memory_bytes gauge",
            f"process_resident_memory_bytes {mem.rss}",
            "# HELP process_virtual_memory_bytes Virtual memory size in bytes.",
            "# TYPE process_virtual_memory_bytes gauge",
            f"process_virtual_memory_bytes {mem.vms}",
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {_num(started)}",
            "# HELP process_open_fds Number of open file descriptors.",
            "# TYPE process_open_fds gauge",
            f"process_open_fds {fds}",
            "# HELP process_max_fds Maximum number of open file descriptors.",
            "# TYPE process_max_fds gauge",
            f"process_max_fds {max_fds if max_fds != resource.RLIM_INFINITY else os.sysconf('SC_OPEN_MAX')}",
        ]


def _le(v: float | str) -> str:
    """A bucket bound as Prometheus writes it (1 -> "1", 0.5 -> "0.5")."""
    return v if isinstance(v, str) else (str(int(v)) if float(v).is_integer() else repr(v))


__all__ = ["KubeletMetrics"]
