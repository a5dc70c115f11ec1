"""The kubelet's back-off: first restart at once, then 10s, 20s, ... capped at 5m."""

from kybern.node.backoff import Backoff, go_duration


def test_sequence_and_cap() -> None:
    b = Backoff(10, 300)
    t = 1000.0
    assert not b.in_backoff_since("c", t, t)  # first failure: restart now
    delays = [b.next("c", t + i) for i in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]


def test_in_backoff_and_forgetting() -> None:
    b = Backoff(10, 300)
    b.next("c", 0)
    assert b.in_backoff_since("c", 0, 5)
    assert not b.in_backoff_since("c", 0, 11)
    assert b.delay("c", 601) == 0  # quiet for twice the cap: forgotten


def test_go_duration() -> None:
    assert go_duration(10) == "10s"
    assert go_duration(80) == "1m20s"
    assert go_duration(300) == "5m0s"
    assert go_duration(0.0015) == "1.5ms"
