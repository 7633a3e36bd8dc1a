"""Call statistics: exact counts and errors over a sliding window of bounded size, nearest-rank percentiles."""

from __future__ import annotations

from gateway.telemetry.stats import CallStats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_counts_errors_and_percentiles_over_the_calls_in_the_window() -> None:
    clock = Clock()
    stats = CallStats(capacity=100, window=60, clock=clock)
    for took_ms in range(1, 21):  # 1 ms .. 20 ms, every fifth one failed
        started = clock.now
        clock.now += took_ms / 1000
        stats.record(started, failed=took_ms % 5 == 0)
    summary = stats.summary()
    assert (summary["count"], summary["errors"], summary["window_seconds"]) == (20, 4, 60)
    assert summary["p50_ms"] == 10.0 and summary["p95_ms"] == 19.0


def test_calls_older_than_the_window_drop_out() -> None:
    clock = Clock()
    stats = CallStats(capacity=100, window=60, clock=clock)
    stats.record(clock.now, failed=True)
    clock.now += 61
    stats.record(clock.now - 0.002, failed=False)
    summary = stats.summary()
    assert (summary["count"], summary["errors"], summary["p50_ms"]) == (1, 0, 2.0)
    clock.now += 61
    assert stats.summary() == {
        "count": 0, "errors": 0, "p50_ms": None, "p95_ms": None, "window_seconds": 60, "total": 2
    }  # fmt: skip


def test_the_ring_keeps_the_last_calls_only() -> None:
    clock = Clock()
    stats = CallStats(capacity=8, window=60, clock=clock)
    for failed in [True] * 8 + [False] * 5:
        stats.record(clock.now, failed=failed)
    assert (stats.summary()["count"], stats.summary()["errors"], stats.summary()["total"]) == (8, 3, 13)
