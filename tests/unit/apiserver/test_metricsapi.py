"""metrics.k8s.io quantities and windows, written as metrics-server writes them."""

from __future__ import annotations

from kybern.apiserver.metricsapi import cpu_quantity, go_duration, memory_quantity


def test_quantities() -> None:
    assert [cpu_quantity(n) for n in (0, 250_000_000, 2_000_000_000, 1_234_567, 5_000)] == \
        ["0", "250m", "2", "1234567n", "5u"]
    assert [memory_quantity(n) for n in (0, 1024, 13_996_032, 1000, 3 * 2**30)] == \
        ["0", "1Ki", "13668Ki", "1000", "3Gi"]


def test_windows() -> None:
    assert [go_duration(s) for s in (10.0, 10.25, 0.5, 90.0, 0)] == ["10s", "10.25s", "500ms", "1m30s", "0s"]
