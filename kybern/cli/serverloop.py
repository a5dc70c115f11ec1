"""The event loop of the apiserver's processes: uvloop when it is installed.

A GET or a create is mostly event-loop and transport work: asyncio's pure-Python
selector loop and its TLS layer (sslproto) were ~40 % of a GET's server CPU and
~20 % of a create's (py-spy; docs/benchmarks.md, issue 3, fifth round). uvloop
runs the loop, the sockets and the TLS record plumbing in C (libuv, Cython; the
encryption itself stays OpenSSL's through `ssl.SSLObject`, as in asyncio), and
keeps asyncio's API, so aiohttp, the watch fan-out and the SQLite group commit
run on it unchanged.

Only processes that serve the API use it: `kybern server` (with its controllers
and scheduler), the `--api-workers` processes, and `kybern up` unless the node
agent runs inside it (`--agent-in-process`): the agent reaps its containers
through asyncio's child watchers (childwatch.py), which uvloop replaces with its
own. `KYBERN_EVENT_LOOP=asyncio` keeps the standard loop (to compare, or if
uvloop misbehaves on some platform).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None for asyncio's default."""
    if os.environ.get("KYBERN_EVENT_LOOP", "uvloop").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # an install without it: the standard loop, same behaviour
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], *, fast: bool = True) -> T:
    """asyncio.run(main), on uvloop when `fast` and available."""
    with asyncio.Runner(loop_factory=loop_factory() if fast else None) as runner:
        return runner.run(main)
