"""The garbage collector while a gateway starts.

A start allocates objects that live as long as their backend's listing: the tools as the SDK parsed them, their
renamed copies, the lookup tables. At its default thresholds CPython's collector runs a full collection whenever
the objects that survived younger collections have grown by a quarter, and each full collection traverses
everything the imports left behind too: with 100 backends of 100 tools, about a second of CPU in a start that
otherwise takes 1.5 s. While a gateway starts, the collector runs young collections only, and less often.
Collection is process-wide, so overlapping starts (several gateways in one process) restore the thresholds when
the last one ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# A young collection every 20,000 net allocations instead of every 700; no older collection in practice.
STARTING = (20_000, 50, 1_000)
_starts: list[tuple[int, int, int]] = []


@contextmanager
def starting() -> Iterator[None]:
    """Collect less while the block runs; the thresholds in force before the first start come back after."""
    _starts.append(gc.get_threshold())
    gc.set_threshold(*STARTING)
    try:
        yield
    finally:
        previous = _starts.pop()
        if not _starts:
            gc.set_threshold(*previous)
