"""Call statistics for one backend: count, errors and latency percentiles over a sliding window.

The window is the last ``WINDOW_SECONDS`` (five minutes), of at most the last ``CAPACITY`` calls: a ring of fixed
size written in place, so recording a call stores three values and allocates nothing beyond its float; the
percentiles are worked out only when someone asks. A call is an error when it did not end in a result, or its
result says ``isError``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

WINDOW_SECONDS = 300
CAPACITY = 1024


class CallStats:
    """A bounded ring of the latest calls: when each ended, how long it took, whether it failed."""

    def __init__(
        self, capacity: int = CAPACITY, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self._window = window
        self._ended = [-math.inf] * capacity
        self._took = [0.0] * capacity
        self._failed = [False] * capacity
        self._next = 0
        self._total = 0

    def record(self, started: float, failed: bool) -> None:
        """A call that began at ``started`` (``clock()``) has just ended."""
        now = self.clock()
        slot = self._next
        self._ended[slot] = now
        self._took[slot] = now - started
        self._failed[slot] = failed
        self._next = (slot + 1) % len(self._ended)
        self._total += 1

    def summary(self) -> dict[str, Any]:
        """``count``, ``errors``, ``p50_ms``, ``p95_ms`` (``None`` without calls), ``window_seconds``, and
        ``total``, every call ever recorded (a rate is the difference of two readings)."""
        since = self.clock() - self._window
        recent = [i for i, ended in enumerate(self._ended) if ended >= since]
        took = sorted(self._took[i] for i in recent)
        return {
            "count": len(took),
            "errors": sum(self._failed[i] for i in recent),
            "p50_ms": _percentile(took, 50),
            "p95_ms": _percentile(took, 95),
            "window_seconds": self._window,
            "total": self._total,
        }


def _percentile(ordered: list[float], rank: int) -> float | None:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return None
    index = max(math.ceil(rank / 100 * len(ordered)) - 1, 0)
    return round(ordered[index] * 1000, 3)
