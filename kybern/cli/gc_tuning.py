"""Garbage-collector settings for kybern's long-running processes.

CPython runs a young-generation collection every 700 net allocations of
container objects. A node agent starting pods allocates millions of
short-lived dicts and lists (pods decoded from watches, statuses, HTTP
headers) that reference counting frees anyway, so those collections find
almost nothing: in a burst of 200 pod starts they cost ~10 % of the agent's CPU
(docs/benchmarks.md, issue 4). So, once started: what the imports and set-up
built is frozen (never scanned again), and a young collection runs every
50,000 allocations; cyclic garbage still gets collected, a little later.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def tune() -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
