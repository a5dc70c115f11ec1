"""The process runtime alone (issue 4): CPU and wall time per pod start, printed,
never asserted.

No apiserver, no agent: one process drives `ProcessRuntime` as the pod worker
does for a bare pod (`sleep 3600`, image `demo:v1`, a resolv.conf mount) —
run_pod_sandbox, create_container, start_container — for N pods, 8 at a time
(the agent's sync slots), then stops and removes them. It prints this
process's user and system CPU per pod for the starts (the spawner thread
included; the containers' own CPU is theirs), wall time, and the syscalls
counted by `strace -c -f` when asked. The figure to compare between two
versions of the runtime is CPU per pod, run alternately on this shared machine.

`--pod-network cni` gives every pod a network namespace on a bridge, as the
agent's CNI pod network does (root; the built-in bridge plugin unless
KYBERN_CNI_BUILTIN=0). The event-loop thread's own CPU is printed apart from
the process's (the rest is the netns and cgroup threads and the executor).

Run (as root to have cgroups; TMPDIR on the disk to measure):
    python bench/runtime.py [--pods 200] [--slots 8] [--pod-network host|cni] [--py-spy OUT]
                            [--strace PREFIX] [--cprofile OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from kybern.network.podnet import PodNetwork
from kybern.node.images import ImageStore
from kybern.node.runtimes import cgroups
from kybern.node.runtimes.base import ContainerConfig, Mount, PodSandboxConfig
from kybern.node.runtimes.process import ProcessRuntime


def cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="kybern-runtime-bench-") as d:
        images = ImageStore(d)
        network = None
        if args.pod_network == "cni":
            network = PodNetwork(d, f"bench-{os.getpid()}", "cni")
            await network.setup()
        rt = ProcessRuntime(d, images, node_name=f"bench-{os.getpid()}", network=network)
        await rt.start()
        slots = asyncio.Semaphore(args.slots)
        started: list[str] = []
        sandboxes: list[str] = []

        async def one(i: int) -> None:
            uid = str(uuid.uuid4())  # the netns is named after its first 8 hex digits
            logs = os.path.join(d, "pods", uid)
            os.makedirs(logs)
            sb = PodSandboxConfig(name=f"p{i}", namespace="default", uid=uid, hostname=f"p{i}",
                                  log_directory=logs, host_network=network is None,
                                  cgroup_parent=cgroups.cgroup_parent("BestEffort", uid))
            async with slots:
                sid = await rt.run_pod_sandbox(sb)
                resolv = os.path.join(logs, "resolv.conf")
                with open(resolv, "w") as f:
                    f.write("nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\n")
                cfg = ContainerConfig(name="c", image="demo:v1", command=["sleep", "3600"], log_path="c/0.log",
                                      env=[("KUBERNETES_SERVICE_HOST", "10.96.0.1")],
                                      mounts=[Mount(container_path="/etc/resolv.conf", host_path=resolv,
                                                    readonly=True)],
                                      labels={"io.kubernetes.pod.uid": uid, "io.kubernetes.container.name": "c"})
                cid = await rt.create_container(sid, cfg, sb)
                await rt.start_container(cid)
            sandboxes.append(sid)
            started.append(cid)

        spy = None
        if args.py_spy:
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(os.getpid()), "-r", "250", "--format", "raw",
                                    "--nonblocking", "-o", args.py_spy], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        if args.strace:
            spy = subprocess.Popen(["strace", "-ff", "-qq", "-p", str(os.getpid()), "-o", args.strace],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if spy is not None:
            await asyncio.sleep(1.0)
        prof = None
        if args.cprofile:  # the event-loop thread only
            import cProfile
            prof = cProfile.Profile(time.thread_time)  # CPU time, not wall: the machine is shared
            prof.enable()
        worker = psutil.Process(rt.spawner.pid) if rt.spawner.pid else None  # spawnd.py, a live child
        w0 = worker.cpu_times() if worker else None
        u0, s0 = cpu()
        l0 = time.thread_time()
        t0 = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(args.pods)))
        wall = time.monotonic() - t0
        u1, s1 = cpu()
        loop_cpu = time.thread_time() - l0
        w1 = worker.cpu_times() if worker else None
        if prof is not None:
            prof.disable()
            prof.dump_stats(args.cprofile)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
        n = args.pods
        print(f"  {n} pods started in {wall:.2f} s ({n / wall:.0f} pods/s), {args.slots} at a time; "
              f"cgroups: {rt.cgroups.describe()}")
        print(f"  CPU per pod start: {(u1 - u0 + s1 - s0) / n * 1e3:.2f} ms "
              f"(user {(u1 - u0) / n * 1e3:.2f}, system {(s1 - s0) / n * 1e3:.2f}); "
              f"the event-loop thread {loop_cpu / n * 1e3:.2f} ms, other threads "
              f"{(u1 - u0 + s1 - s0 - loop_cpu) / n * 1e3:.2f} ms")
        if w0 is not None and w1 is not None:
            wu, ws = w1.user - w0.user, w1.system - w0.system
            print(f"  its spawn worker (spawnd.py): {(wu + ws) / n * 1e3:.2f} ms per pod start "
                  f"(user {wu / n * 1e3:.2f}, system {ws / n * 1e3:.2f}); "
                  f"both: {(u1 - u0 + s1 - s0 + wu + ws) / n * 1e3:.2f} ms")
        t1 = time.monotonic()
        for sid in sandboxes:
            await rt.stop_pod_sandbox(sid)
            await rt.remove_pod_sandbox(sid)
        print(f"  stopped and removed in {time.monotonic() - t1:.2f} s")
        await rt.shutdown(1.0)
        if network is not None:
            await network.shutdown()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--pod-network", choices=["host", "cni"], default="host")
    ap.add_argument("--py-spy", default="", metavar="OUT")
    ap.add_argument("--strace", default="", metavar="OUT", help="strace -ff output prefix")
    ap.add_argument("--cprofile", default="", metavar="OUT", help="cProfile of the starts (event-loop thread)")
    asyncio.run(main(ap.parse_args()))
