"""``latency_app:app``: the one job type bench/latency.py measures, ``stamp``.

A ``stamp`` job carries ``{"due": epoch s, "sent": epoch s}``: when the paced producer
meant to enqueue it and when it did. Its handler notes the wall clock at its start and
keeps three delays in memory: from due, from sent, and from the moment Redis added the
entry (its id's milliseconds: the worker's own share, to the millisecond). A ``dump``
job (``{"into": PATH}``) writes them to PATH as JSON lines ``[start - due, start -
sent, start - added]`` and clears them. Nothing else runs in the
handler, so what is measured is the worker's own path from stream to handler.

``LATENCY_BENCH_GC=tuned`` makes the worker collect as the producer does (start-up frozen
out of scans, generation 0 every 50,000 allocations): the experiment of bench/README.md.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from pathlib import Path

import orjson

from jobqueue.worker.app import App, JobContext

app = App("jobqueue-latency-bench")
if os.environ.get("LATENCY_BENCH_GC") == "tuned":
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
_delays: list[tuple[float, float, float]] = []


@app.handler("stamp")
async def stamp(ctx: JobContext) -> None:
    now = time.time()
    added_s = int(ctx.entry_id.split("-", 1)[0]) / 1000
    _delays.append((now - ctx.payload["due"], now - ctx.payload["sent"], now - added_s))


@app.handler("dump")
async def dump(ctx: JobContext) -> None:
    lines = b"".join(orjson.dumps(pair) + b"\n" for pair in _delays)
    await asyncio.to_thread(Path(ctx.payload["into"]).write_bytes, lines)
    _delays.clear()
