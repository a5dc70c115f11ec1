"""Garbage-collection pauses of kybern's apiserver processes, for bench/api.py.

    KYBERN_GC_PAUSES=DIR PYTHONPATH=bench/gc_pauses:. python bench/api.py --paced-only 3
    python bench/gc_pauses/summary.py DIR

Python imports this module at start-up when its directory is on PYTHONPATH
(site.py's sitecustomize hook); with KYBERN_GC_PAUSES set it records, in every
`kybern server` and `api-worker` process the bench starts, each collection's
generation, wall and CPU time (of the collecting thread) and, for full
collections, how many objects were left to scan, one line per collection in
DIR/<pid>.log. gc.callbacks run inside the collection, so lines are kept in
memory and written by a thread every 0.5 s."""

from __future__ import annotations

import os
import sys

if os.environ.get("KYBERN_GC_PAUSES") and any(a in ("server", "api-worker") for a in sys.argv[1:3]):
    import gc
    import threading
    import time

    _lines: list[str] = []
    _out = open(os.path.join(os.environ["KYBERN_GC_PAUSES"], f"{os.getpid()}.log"), "a")  # noqa: SIM115
    _start: list[float] = [0.0, 0.0]

    def _pause(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _start[:] = [time.perf_counter(), time.thread_time()]
            return
        wall, cpu = time.perf_counter() - _start[0], time.thread_time() - _start[1]
        gen = info["generation"]
        # after the collection; frozen ones not counted. (Nothing here may walk the frozen
        # objects: gc.get_freeze_count() counts them one by one, ~0.3 ms at every collection.)
        left = len(gc.get_objects(2)) if gen == 2 else -1
        _lines.append(f"{time.time():.4f} gen{gen} wall_ms={wall * 1e3:.2f} cpu_ms={cpu * 1e3:.2f} "
                      f"old_objects={left}\n")

    def _writer() -> None:
        global _lines
        while True:
            time.sleep(0.5)
            batch, _lines = _lines, []  # a callback appends to one list or the other, never lost
            _out.writelines(batch)
            _out.flush()

    gc.callbacks.append(_pause)
    threading.Thread(target=_writer, name="gc-pauses", daemon=True).start()
