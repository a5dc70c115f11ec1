"""Garbage-collector settings for kybern's long-running processes.

Node agent (`tune`): CPython runs a young-generation collection every 700 net
allocations of container objects. A node agent starting pods allocates millions
of short-lived dicts and lists (pods decoded from watches, statuses, HTTP
headers) that reference counting frees anyway, so those collections find
almost nothing: in a burst of 200 pod starts they cost ~10 % of the agent's CPU
(docs/benchmarks.md, issue 4). So, once started: what the imports and set-up
built is frozen (never scanned again), and a young collection runs every
50,000 allocations; cyclic garbage still gets collected, a little later.

Apiserver processes (`freeze_for_serving`): the cost that matters there is the
pause. A full (generation-2) collection walks every tracked object the process
holds and answers nothing meanwhile: ~55,000 objects from start-up (modules,
functions, the API registry and schemas, routes) plus the watch cache's
entries and the open connections; with 10,000 pods cached that was 45-90 ms of
CPU per collection, several per minute while objects are created
(docs/benchmarks.md, issue 3, sixth round), enough to lift the p99 of paced
writes past 25 ms by itself. Freezing once the process is set up and its watch
cache filled, before the first connection is accepted, takes all of that out
of every later collection (the same collections then took 3-50 ms, more with
hundreds of client connections open: each holds ~45 tracked objects). Full
collections are also made rarer: after 100 generation-1
collections instead of 10 (~75 s apart per process in a paced-create run
instead of a few seconds); those found no garbage in any measured run (the
apiserver makes almost no reference cycles that live long), so cyclic garbage
waits longer, no more. The young thresholds stay CPython's: a larger young
generation means fewer but longer pauses, the wrong trade here. Frozen objects
are still freed by reference counting when dropped (a cached object replaced
by its next version); only a reference cycle among them would never be
collected, and at that point the process holds no connection or request, only
what it keeps for its lifetime.

Node agent, memory (`return_free_memory`): a burst of pod starts leaves the
C heap (glibc malloc: everything bigger than CPython's 512-byte small objects,
such as decoded pods' dicts and strings, HTTP bodies and buffers) holding freed
but unreturned pages. glibc gives back only what is free at the top of the heap
on its own; `malloc_trim(0)` returns every free page. Called every 20 s (~0.15 ms
each; nothing to do when idle), it took an agent with 50 idle pods from 60 MB to
51 MB RSS (docs/benchmarks.md, issue 4). Not glibc (musl, macOS): nothing done.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
from typing import Any

YOUNG_THRESHOLD = 50_000
# apiserver processes: full collections after this many generation-1 ones (CPython: 10)
SERVING_OLDEST_THRESHOLD = 100


def tune() -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


def freeze_for_serving() -> None:
    """An apiserver process, set up and about to accept connections: everything
    it holds now moves to the permanent generation (after one full collection,
    so no garbage is kept), and full collections become rarer."""
    gc.collect()
    gc.freeze()
    young, older, _ = gc.get_threshold()
    gc.set_threshold(young, older, SERVING_OLDEST_THRESHOLD)


TRIM_INTERVAL = 20.0


def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        return None


async def return_free_memory(interval: float = TRIM_INTERVAL) -> None:
    """Forever: give the C heap's free pages back to the system every `interval` s."""
    trim = _malloc_trim()
    if trim is None:
        return
    while True:
        await asyncio.sleep(interval)
        trim(0)
