"""The pod network's cost per pod (issue 4), printed, never asserted.

As the node agent does for each pod on the CNI pod network: make a network
namespace (`netns_add`), run CNI ADD of a bridge + host-local config on it, and
at the end CNI DEL and delete the namespace — for N pods in a row, on a bridge
and subnet of its own (`kbbench0`, 10.250.0.0/24). Prints CPU (user, system,
and that of exited plugin processes) and wall time per pod for each step.
`--executables` runs Debian's plugin executables (KYBERN_CNI_BUILTIN=0), else
the built-in bridge plugin (kybern/network/bridge.py). Root only.

Run: python bench/podnet.py [--pods 100] [--executables]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu() -> tuple[float, float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime, me.ru_stime, kids.ru_utime + kids.ru_stime


async def main(args: argparse.Namespace) -> None:
    from kybern.network import bridge, cni, netns

    bridge.ENABLED = not args.executables
    with tempfile.TemporaryDirectory(prefix="kybern-podnet-bench-") as d:
        conf = {"cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "kbbench0", "isGateway": True,
                "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.250.0.0/24", "gateway": "10.250.0.1"}]],
                         "routes": [{"dst": "0.0.0.0/0"}], "dataDir": d}}
        names = [f"kbbench-{os.getpid()}-{i}" for i in range(args.pods)]
        try:
            warm = await netns.netns_add(names[0] + "w")  # the bridge, imports, threads: not counted
            await cni.invoke("DEL", {**conf, "prevResult": await cni.invoke(
                "ADD", conf, container_id="warm", netns=warm)}, container_id="warm", netns=warm)
            netns.netns_delete(names[0] + "w")

            async def step(what: str, fn) -> list:
                c0, t0 = cpu(), time.perf_counter()
                out = [await fn(i) for i in range(args.pods)]
                c1, wall = cpu(), time.perf_counter() - t0
                u, s, k = ((b - a) / args.pods * 1e3 for a, b in zip(c0, c1))
                print(f"  {what:<10} per pod: CPU {u + s + k:6.2f} ms (user {u:.2f}, system {s:.2f}, "
                      f"plugin processes {k:.2f}), wall {wall / args.pods * 1e3:6.2f} ms")
                return out

            kind = "executables" if args.executables else "built in"
            print(f"{args.pods} pods, bridge plugin {kind}:")
            paths = await step("netns add", lambda i: netns.netns_add(names[i]))
            results = await step("CNI ADD", lambda i: cni.invoke("ADD", conf, container_id=f"c{i}",
                                                                   netns=paths[i]))
            await step("CNI DEL", lambda i: cni.invoke("DEL", {**conf, "prevResult": results[i]},
                                                       container_id=f"c{i}", netns=paths[i]))

            async def delete(i: int) -> None:
                netns.netns_delete(names[i])
            await step("netns del", delete)
        finally:
            for n in names:
                netns.netns_delete(n)
            subprocess.run(["ip", "link", "del", "kbbench0"], check=False, capture_output=True)  # noqa: ASYNC221


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/podnet.py needs root (network namespaces, links)")
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--executables", action="store_true", help="Debian's bridge and host-local executables")
    asyncio.run(main(ap.parse_args()))
