"""The node agent's events give way to pod starts (kybern/client/events.py,
`yield_to`): while pods wait for a sync slot an event waits too, at most
`max_yield` seconds, then it is written as usual, in order."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from kybern.client.events import EventRecorder
from kybern.client.resources import CONFIGMAPS, EVENTS

pytestmark = pytest.mark.e2e


async def _reasons(client: Any, namespace: str) -> list[str]:
    items = (await client.list(EVENTS, namespace))["items"]
    return [e["reason"] for e in sorted(items, key=lambda e: e["metadata"]["resourceVersion"])]


async def test_events_wait_while_pods_wait_then_go_in_order(cluster: Any, namespace: str) -> None:
    client = cluster.client()
    try:
        cm = await client.create(CONFIGMAPS, {"metadata": {"name": "subject"}}, namespace)
        busy = True
        rec = EventRecorder(client, "kubelet", "node-x", qps=50, burst=100, yield_to=lambda: busy, max_yield=30)
        rec.event(cm, "Normal", "First", "one")
        rec.event(cm, "Normal", "Second", "two")
        await asyncio.sleep(0.5)
        assert await _reasons(client, namespace) == []  # held back while "pods wait"
        busy = False
        t0 = time.monotonic()
        while await _reasons(client, namespace) != ["First", "Second"]:
            assert time.monotonic() - t0 < 5, await _reasons(client, namespace)
            await asyncio.sleep(0.05)
    finally:
        await client.close()


async def test_an_event_waits_at_most_max_yield(cluster: Any, namespace: str) -> None:
    client = cluster.client()
    try:
        cm = await client.create(CONFIGMAPS, {"metadata": {"name": "subject"}}, namespace)
        rec = EventRecorder(client, "kubelet", "node-x", yield_to=lambda: True, max_yield=0.5)
        t0 = time.monotonic()
        rec.event(cm, "Warning", "Late", "still written")
        while await _reasons(client, namespace) != ["Late"]:
            assert time.monotonic() - t0 < 5
            await asyncio.sleep(0.05)
        assert time.monotonic() - t0 >= 0.45
    finally:
        await client.close()
