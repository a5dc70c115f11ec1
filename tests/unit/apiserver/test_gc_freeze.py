"""An apiserver process freezes what it holds once set up (kybern/cli/gc_tuning.py):
later garbage collections skip the start-up objects and the watch cache filled
from storage, which shortens their pauses, and full collections are rarer;
garbage is still collected."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

from kybern.apiserver.watchcache import Entry
from kybern.cli import cluster


def test_freeze_for_serving_keeps_collecting_garbage():
    # in a fresh interpreter: freezing is process-wide
    code = textwrap.dedent("""
        import gc, weakref
        from kybern.cli import gc_tuning

        class Node:
            pass

        def cycle():
            a, b = Node(), Node()
            a.other, b.other = b, a
            return weakref.ref(a)

        thresholds = gc.get_threshold()
        before = cycle()  # garbage already: the collection before the freeze takes it
        kept = Node()  # live at the freeze: frozen
        kept_ref = weakref.ref(kept)
        gc_tuning.freeze_for_serving()
        assert before() is None, "garbage was frozen"
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == (*thresholds[:2], gc_tuning.SERVING_OLDEST_THRESHOLD)
        assert not any(o is kept for o in gc.get_objects()), "a live object was left to the scans"
        del kept  # a frozen object is still freed by reference counting
        assert kept_ref() is None
        after = cycle()  # cyclic garbage made later is still collected
        gc.collect()
        assert after() is None
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


async def test_server_start_freezes_its_watch_cache(tmp_path):
    cfg = cluster.ClusterConfig(data_dir=tmp_path, port=0, run_node=False, run_controllers=False,
                                run_ingress=False, run_dns=False, api_workers=1)
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        running = await cluster.start(cfg)
        try:
            assert gc.get_freeze_count() > 0
            # the entries the cache filled at start-up (the bootstrap namespaces) are out of the scans
            # (gc.get_objects() walks the collected generations only)
            assert not [o for o in gc.get_objects() if isinstance(o, Entry)]
        finally:
            await cluster.stop(running)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
