"""The event recorder's rate limit: client-go's token bucket (the kubelet's
eventRecordQPS and eventBurst): a burst goes at once, the rest at the rate."""

from __future__ import annotations

import time

from kybern.client.events import TokenBucket


async def test_burst_at_once_then_the_rate() -> None:
    bucket = TokenBucket(qps=20, burst=3)
    t0 = time.monotonic()
    for _ in range(3):
        await bucket.take()
    assert time.monotonic() - t0 < 0.04  # the burst: no waiting
    for _ in range(4):
        await bucket.take()
    # four more at 20/s: at least 4 × 50 ms after the burst, less the scheduler's rounding
    assert time.monotonic() - t0 >= 0.19


async def test_tokens_saved_up_to_the_burst_only() -> None:
    bucket = TokenBucket(qps=50, burst=2)
    await bucket.take()
    await bucket.take()
    time.sleep(0.2)  # ten tokens' worth of time, but only two are kept
    t0 = time.monotonic()
    for _ in range(2):
        await bucket.take()
    assert time.monotonic() - t0 < 0.015
    await bucket.take()  # the third waits for a new token (20 ms at 50/s)
    assert time.monotonic() - t0 >= 0.015
