"""Summary of bench/gc_pauses logs: per generation, collections, their CPU time
(total, max) and the longest wall time, leaving out each process's first
SKIP seconds of logged collections (start-up: imports, bootstrap, the watch
cache's fill; 3 s unless given). Usage: python bench/gc_pauses/summary.py DIR [SKIP]"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main() -> None:
    d = Path(sys.argv[1])
    skip = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    rows: dict[int, list[tuple[float, float, int]]] = {0: [], 1: [], 2: []}
    for f in sorted(d.glob("*.log")):
        first = None
        for line in f.read_text().splitlines():
            m = re.match(r"([\d.]+) gen(\d) wall_ms=([\d.]+) cpu_ms=([\d.]+) old_objects=(-?\d+)", line)
            if not m:
                continue
            t, gen = float(m.group(1)), int(m.group(2))
            first = first or t
            if t - first >= skip:
                rows[gen].append((float(m.group(3)), float(m.group(4)), int(m.group(5))))
    for gen, r in rows.items():
        if not r:
            print(f"gen{gen}: none")
            continue
        cpu = [c for _, c, _ in r]
        print(f"gen{gen}: {len(r)} collections, CPU {sum(cpu):.0f} ms in all, max {max(cpu):.1f} ms; "
              f"longest wall {max(w for w, _, _ in r):.1f} ms"
              + (f"; up to {max(o for _, _, o in r):,} objects in the old generation after one" if gen == 2 else ""))


if __name__ == "__main__":
    main()
