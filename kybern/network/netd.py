"""The pod-network worker: a process that makes pods' network namespaces and
runs their CNI ADD for the node agent, beside its event loop.

Why a process: a pod's network is kernel work (unshare, a bind mount, netlink
requests, ~2-3 ms of CPU per pod) done on the agent's netns thread, and every
system call that thread makes hands the GIL over and back with the event loop,
which in a burst of pod starts is the node's critical path (docs/benchmarks.md,
issue 4). Here the same code (netns.netns_add, cni.add) runs on the other core.

Protocol: JSON lines on stdin/stdout.
- request  {"id": N, "netns": NAME, "conflist": {...}, "container_id": ID,
            "args": CNI_ARGS, "runtime_config": {...}|null}
- reply    {"id": N, "result": {...}}  (the CNI result) or
           {"id": N, "error": MSG, "cni": [plugin, command, code, msg, details]|null}
Requests run concurrently (the netns thread serialises the kernel work). On a
failure the worker deletes the namespace it made. End of file on stdin (the
agent is gone): it exits; it also gets SIGKILL when the agent's thread that
started it ends (PR_SET_PDEATHSIG). Run as `python -I -S netd.py`: standard
library and kybern's network modules only, no site packages (~10 MB less).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import sys
from typing import Any

if __name__ == "__main__" and not __package__:  # run by path with -I -S: find the package beside this file
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from kybern.network import cni  # noqa: E402
from kybern.network.netns import NETNS_DIR, netns_add, netns_delete  # noqa: E402


async def _serve_one(req: dict[str, Any], out: asyncio.StreamWriter | Any) -> None:
    name = req["netns"]
    path = os.path.join(NETNS_DIR, name)
    try:
        await netns_add(name)
        result = await cni.add(req["conflist"], container_id=req["container_id"], netns=path,
                               args=req.get("args", ""), runtime_config=req.get("runtime_config"))
        reply: dict[str, Any] = {"id": req["id"], "result": result}
    except cni.CNIError as e:
        netns_delete(name)
        reply = {"id": req["id"], "error": str(e), "cni": [e.plugin, e.command, e.code, e.msg, e.details]}
    except Exception as e:  # noqa: BLE001 — every failure is the agent's to report
        netns_delete(name)
        reply = {"id": req["id"], "error": f"{type(e).__name__}: {e}", "cni": None}
    out.write(json.dumps(reply).encode() + b"\n")


async def _main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
    tasks: set[asyncio.Task[None]] = set()
    while line := await reader.readline():
        t = asyncio.create_task(_serve_one(json.loads(line), transport))
        tasks.add(t)
        t.add_done_callback(tasks.discard)


if __name__ == "__main__":
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    asyncio.run(_main())
