"""The node agent gives freed C-heap pages back (kybern/cli/gc_tuning.py):
after a burst's garbage is freed, its RSS falls, as `ps` would show."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import asyncio, psutil
from kybern.cli import gc_tuning
p = psutil.Process()
burst = [bytes(4000) + str(i).encode() for i in range(40000)]  # ~160 MB of C-heap blocks
keep = burst[-1]
del burst  # freed, but glibc keeps most of it mapped
before = p.memory_info().rss

async def main():
    t = asyncio.create_task(gc_tuning.return_free_memory(0.05))
    await asyncio.sleep(0.3)
    t.cancel()

asyncio.run(main())
print(before, p.memory_info().rss)
"""


def test_freed_heap_pages_are_returned() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
    before, after = map(int, out.split())
    assert after < before - 50_000_000, (before, after)
