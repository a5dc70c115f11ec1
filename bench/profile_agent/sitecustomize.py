"""Profile the node agent's event-loop thread around a bench/node.py burst.

    PYTHONPATH=bench/profile_agent BENCH_SIGNAL_AGENT=1 python bench/node.py --skip-idle
    python -c "import pstats; pstats.Stats('/tmp/agent.prof').sort_stats('tottime').print_stats(30)"

Every Python process started with this on PYTHONPATH imports it; only the agent
(`kybern ... agent`) acts: cProfile on its main thread, counting CPU time (the
machine is shared), on from SIGUSR1 to SIGUSR2, written to $AGENT_PROF
(default /tmp/agent.prof).
"""

import os
import signal
import sys
import time

if "agent" in sys.argv:
    import cProfile

    _prof = cProfile.Profile(time.thread_time)

    def _on(*_: object) -> None:
        _prof.enable()

    def _off(*_: object) -> None:
        _prof.disable()
        _prof.dump_stats(os.environ.get("AGENT_PROF", "/tmp/agent.prof"))

    signal.signal(signal.SIGUSR1, _on)
    signal.signal(signal.SIGUSR2, _off)
