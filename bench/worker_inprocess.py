"""The worker's own CPU per job, without Redis: how far it is above asyncio's floor.

One process, no network: batches of 32 synthetic ``noop`` entries (SPEC §2 fields) go
through the worker's real path: `new_entries`, `Dispatcher.dispatch` (decode, in-flight
accounting, one task each, running marks), the handler run by `Executor.run`, and the
acknowledgement flush's bookkeeping (`Outcomes.take_flush` building the script's
arguments, `Outcomes.settle` freeing slots and counting metrics). The baseline, in the
same run: one bare asyncio task per job running an empty coroutine, the floor of any
task-per-job design on this interpreter and event loop (uvloop).

    .venv/bin/python bench/worker_inprocess.py [--batches 1000] [--rounds 7] [--lanes]

``--lanes`` also runs the path of a queue with priority lanes (``high:8-10,normal:4-7,
low:1-3``) for batches from the default lane (``normal``, the queue's stream) and from
the ``low`` lane (lane-qualified delivery keys, acknowledgements grouped by stream).

Prints the median CPU time (``time.process_time``) per job of each and their ratio.
Useful for changes to the per-job Python path, where the end-to-end benchmark's noise
(±15 % between runs) hides differences of a few percent.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import uvloop
from prometheus_client import CollectorRegistry

from jobqueue.core.lanes import parse_lanes
from jobqueue.core.settings import QueueSettings
from jobqueue.worker.reader import new_entries
from jobqueue.worker.runner import Worker
from jobqueue.worker.settings import WorkerSettings
from jobqueue.worker.testing import app

BATCH = 32
FIELDS = ["type", "noop", "payload", '{"n": 1}', "priority", "5", "attempts", "0"]
FIELDS += ["enqueued_at", "2026-01-01T00:00:00Z"]
LANES = "high:8-10,normal:4-7,low:1-3"


async def worker_path(batches: int, rounds: int, lane: str = "") -> float:
    """Median CPU µs per job through dispatch, run and flush bookkeeping; with ``lane``
    the queue has priority lanes and the batches come from that lane's stream."""
    # Never connects: nothing on this path talks to Redis.
    lanes = parse_lanes(LANES if lane else "")
    queue = QueueSettings(redis_url="redis://127.0.0.1:1/0", lanes=lanes)
    settings = WorkerSettings(queue=queue, consumer="bench", http_port=0)
    worker = Worker(app, settings, registry=CollectorRegistry())
    source = next((s for s in worker.lanes if s.name == lane), None) if lane else None
    serial = 0

    async def one_batch() -> None:
        nonlocal serial
        serial += 1
        rows = [[f"{serial}-{n}", [*FIELDS, "id", f"job-{serial}-{n}"]] for n in range(BATCH)]
        await worker.dispatcher.dispatch(new_entries([["bench", rows]]), source)
        await asyncio.sleep(0)  # the tasks run
        await asyncio.sleep(0)
        flush = worker.outcomes.take_flush()
        assert flush is not None
        worker.outcomes.settle(flush, BATCH)
        assert worker.inflight.count == 0

    return await _median_us(one_batch, batches, rounds)


async def bare_tasks(batches: int, rounds: int) -> float:
    """Median CPU µs per job of one bare task per job."""

    async def nothing() -> None:
        pass

    async def one_batch() -> None:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(nothing()) for _ in range(BATCH)]  # kept, as the worker does
        await asyncio.sleep(0)
        assert all(task.done() for task in tasks)

    return await _median_us(one_batch, batches, rounds)


async def _median_us(one_batch: Callable[[], Awaitable[None]], batches: int, rounds: int) -> float:
    for _ in range(batches // 5):  # warm up
        await one_batch()
    per_job = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(batches):
            await one_batch()
        per_job.append((time.process_time() - started) / (batches * BATCH) * 1e6)
    return statistics.median(per_job)


async def main(batches: int, rounds: int, lanes: bool) -> None:
    floor = await bare_tasks(batches, rounds)
    ours = await worker_path(batches, rounds)
    print(f"bare task per job         {floor:6.2f} us CPU")
    print(f"worker path per job       {ours:6.2f} us CPU   ({ours / floor:.1f}x the bare task)")
    if lanes:
        for lane in ("normal", "low"):
            laned = await worker_path(batches, rounds, lane)
            print(
                f"  with lanes, {lane:7s}     {laned:6.2f} us CPU   ({laned / ours:.2f}x no lanes)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--lanes", action="store_true", help="also from a lane (normal, low)")
    args = parser.parse_args()
    uvloop.run(main(args.batches, args.rounds, args.lanes))
