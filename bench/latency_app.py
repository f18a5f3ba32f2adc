"""``latency_app:app``: the one job type bench/latency.py measures, ``stamp``.

A ``stamp`` job carries ``{"due": epoch s, "sent": epoch s}``: when the paced producer
meant to enqueue it and when it did. Its handler notes the wall clock at its start and
keeps three delays in memory: from due, from sent, and from the moment Redis added the
entry (its id's milliseconds: the worker's own share, to the millisecond). A ``dump``
job (``{"into": PATH}``) writes them to PATH as JSON lines ``[start - due, start -
sent, start - added]`` and clears them. Nothing else runs in the
handler, so what is measured is the worker's own path from stream to handler.

``LATENCY_BENCH_STAGES=1`` also notes, per entry, when the read that delivered it was
sent, when its reply reached the event loop (``data_received``), when the reader
resumed with it and when the dispatcher took it, and the event loop's stalls (a 1 ms
ticker's overshoot) and the collector's pauses: the parts bench/latency.py splits the
delay into. It wraps worker internals from here, so the worker itself is unchanged.

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
elif os.environ.get("LATENCY_BENCH_GC") == "freeze":
    gc.freeze()
_delays: list[tuple[float, ...]] = []
_STAGES = os.environ.get("LATENCY_BENCH_STAGES") == "1"
_seen: dict[str, tuple[float, float, float, float]] = {}
"""entry id -> (read sent, reply landed, reader resumed, dispatched): with STAGES."""
_stalls: list[tuple[float, float]] = []
_gc_pauses: list[tuple[float, int]] = []


def _instrument() -> None:
    from jobqueue.worker import dispatch, hot_connection, reader

    last = [0.0]
    sent_at: dict[int, float] = {}
    landed = hot_connection._RespProtocol.data_received

    def data_received(self: hot_connection._RespProtocol, data: bytes) -> None:
        last[0] = time.time()
        landed(self, data)

    hot_connection._RespProtocol.data_received = data_received  # type: ignore[method-assign]
    send = reader.Reader._send

    def _send(self: reader.Reader, **kwargs: object) -> object:
        read = send(self, **kwargs)  # type: ignore[arg-type]
        if read is not None:
            sent_at[id(read.replies)] = time.time()
        return read

    reader.Reader._send = _send  # type: ignore[method-assign,assignment]
    receive = reader.Reader._receive

    async def _receive(self: reader.Reader, read: reader._Read) -> object:
        result = await receive(self, read)
        now, sent = time.time(), sent_at.pop(id(read.replies), 0.0)
        reply = result[0]
        if reply:
            for entry_id, _ in reply[0][1]:
                _seen[entry_id] = (sent, last[0], now, 0.0)
        return result

    reader.Reader._receive = _receive  # type: ignore[method-assign,assignment]
    run = dispatch.Dispatcher.dispatch

    async def dispatched(self: dispatch.Dispatcher, entries: list, lane: object = None) -> None:
        now = time.time()
        for entry_id, _, _ in entries:
            got = _seen.get(entry_id)
            if got is not None:
                _seen[entry_id] = (*got[:3], now)
        await run(self, entries, lane)  # type: ignore[arg-type]

    dispatch.Dispatcher.dispatch = dispatched  # type: ignore[method-assign]
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            _gc_pauses.append((time.perf_counter() - gc_started[0], info["generation"]))

    gc.callbacks.append(on_gc)


async def _ticker() -> None:
    # A stall with little CPU time of this process in it was the OS running something
    # else (the machine's load), one with CPU time the loop busy here.
    while True:
        before, cpu = time.perf_counter(), time.process_time()
        await asyncio.sleep(0.001)
        _stalls.append((time.perf_counter() - before - 0.001, time.process_time() - cpu))


if _STAGES:
    _instrument()


@app.handler("stamp")
async def stamp(ctx: JobContext) -> None:
    now = time.time()
    added_s = int(ctx.entry_id.split("-", 1)[0]) / 1000
    due, sent = ctx.payload["due"], ctx.payload["sent"]
    if _STAGES:
        if not _ticking:
            _ticking.append(asyncio.get_running_loop().create_task(_ticker()))
        read, land, resumed, disp = _seen.pop(ctx.entry_id, (0.0, 0.0, 0.0, 0.0))
        _delays.append((now - due, now - sent, now - added_s, sent, read, land, resumed, disp, now))
    else:
        _delays.append((now - due, now - sent, now - added_s))


_ticking: list[asyncio.Task[None]] = []


@app.handler("dump")
async def dump(ctx: JobContext) -> None:
    lines = b"".join(orjson.dumps(pair) + b"\n" for pair in _delays)
    into = Path(ctx.payload["into"])
    if _STAGES:  # first: the bench reads both once the delays file exists
        extra = {"stalls": _stalls, "gc": _gc_pauses}
        await asyncio.to_thread(into.with_suffix(".extra").write_bytes, orjson.dumps(extra))
    await asyncio.to_thread(into.write_bytes, lines)
    _delays.clear()
    _stalls.clear()
    _gc_pauses.clear()
