"""Start-up without the cyclic garbage collector scanning what start-up builds.

A process's imports allocate tens of thousands of objects (a producer ~60,000) that live
as long as the process, and free hardly any cycles (~20 objects after a producer's
start). With the default thresholds the collector still runs every 700 allocations
while modules load, and each older-generation pass scans everything loaded so far:
~35 ms of a producer's start-up and ~12 ms of a worker's on the 2-core machine of
bench/startup.py. `paused_gc` holds it off for a block of imports; the collector runs
as usual afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run the block with automatic collection off (restored after, if it was on)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
