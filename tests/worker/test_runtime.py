"""The worker's runtime in-process against a real Redis: backpressure, supervision,
reclaim and heartbeat."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis as AsyncRedis
from worker.conftest import (
    GROUP,
    KEYS,
    STREAM,
    dead_letters,
    enqueue,
    eventually,
    group_pending,
    record_of,
    run_burst,
    running,
    settings_for,
)

from jobqueue.worker.app import App, JobContext
from jobqueue.worker.crashes import CrashLedger
from jobqueue.worker.reader import Reader
from jobqueue.worker.runner import Worker
from jobqueue.worker.testing import app as testing_app


async def test_a_burst_of_10000_jobs_never_exceeds_the_concurrency_limit(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given 10,000 jobs and a handler that tracks how many run at once
    app, now, peak, done = App(), [0], [0], [0]

    @app.handler("count")
    async def count(ctx: JobContext) -> None:
        now[0] += 1
        peak[0] = max(peak[0], now[0])
        await asyncio.sleep(0.001)
        now[0] -= 1
        done[0] += 1

    await redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    async with redis_client.pipeline(transaction=False) as pipe:
        for n in range(10_000):
            pipe.xadd(STREAM, {"id": f"job-{n}", "type": "count", "payload": "{}"})
        await pipe.execute()
    # when a worker with concurrency 50 runs them, sampling its pending list meanwhile
    worker = Worker(app, settings_for(redis_url, concurrency=50, burst=True))
    held: list[int] = []
    sampling = asyncio.Event()
    sampling.set()

    async def sample() -> None:
        while sampling.is_set():
            summary = await redis_client.xpending(STREAM, GROUP)
            held.append(int(summary["pending"]))
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    assert await asyncio.wait_for(worker.run(handle_signals=False), 120) == 0
    # (a flag, not cancel(): on 3.11 a cancel racing a Redis reply can be swallowed)
    sampling.clear()
    await sampler
    assert len(held) > 10, "the sampler must have run along"
    # then all ran, never more than 50 at once, and Redis never held more than 50 for it
    assert done[0] == 10_000
    assert 1 < peak[0] <= 50
    assert max(held) <= 50
    assert await group_pending(redis_client) == 0


async def test_a_reclaim_sweep_while_a_read_is_ahead_never_overfills_the_pending_list(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given a dead consumer's four idle entries and ten new ones, all jobs that wait
    await redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    for _ in range(4):
        await enqueue(redis_client, "hold", {"until": "go"})
    await redis_client.xreadgroup(GROUP, "ghost", {STREAM: ">"}, count=4)
    for _ in range(10):
        await enqueue(redis_client, "hold", {"until": "go"})
    await asyncio.sleep(0.3)  # idle past the visibility timeout
    # and a worker of concurrency 4 (reads of 2) whose first read left one ahead
    settings = settings_for(redis_url, concurrency=4, visibility_timeout_s=0.2)
    worker = Worker(testing_app, settings)
    reader = worker.read_loop.reader
    try:
        assert await reader.read_new() == 2
        assert reader.reading_ahead
        # when a reclaim sweep runs before the read ahead has been taken
        await worker.reclaimer.sweep()
        await reader.read_new(read_ahead=False)
        # then the worker never holds more entries than its concurrency
        [info] = [
            c for c in await redis_client.xinfo_consumers(STREAM, GROUP) if c["name"] != "ghost"
        ]
        assert info["pending"] <= 4
        assert worker.inflight.count <= 4
    finally:
        for delivery in worker.inflight.deliveries.values():
            assert delivery.task is not None
            delivery.task.cancel()
        worker.hot.close()
        await worker.redis.aclose()


async def test_a_crashed_read_loop_is_restarted_and_work_continues(
    redis_client: AsyncRedis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a read loop whose next read blows up once, after entries were delivered
    original, blown = Reader.read_new, [False]

    async def read_new_once_broken(self: Reader, *, read_ahead: bool = True) -> int:
        arrived = await original(self, read_ahead=read_ahead)
        if arrived and not blown[0]:
            blown[0] = True
            raise RuntimeError("bug in the read loop")
        return arrived

    monkeypatch.setattr(Reader, "read_new", read_new_once_broken)
    ids = [await enqueue(redis_client, "record", {"into": "done"}) for _ in range(5)]
    # when the worker runs
    worker = Worker(testing_app, settings_for(redis_url, burst=True))
    assert await asyncio.wait_for(worker.run(handle_signals=False), 60) == 0
    # then the loop was restarted in-process and every job ran exactly once
    assert blown[0]
    assert worker.read_loop.restarts == 1
    assert await redis_client.hgetall("done") == {i: "1" for i in ids}


async def test_a_read_loop_beyond_repair_exits_non_zero(
    redis_client: AsyncRedis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def always_broken(self: Reader, *, read_ahead: bool = True) -> int:
        raise RuntimeError("corrupt state")

    monkeypatch.setattr(Reader, "read_new", always_broken)
    settings = settings_for(redis_url, max_loop_crashes=3)
    worker = Worker(testing_app, settings)
    assert await asyncio.wait_for(worker.run(handle_signals=False), 60) == 1


async def test_a_long_job_keeps_its_claim_and_is_not_stolen(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given a job that runs three times longer than the visibility timeout
    job_id = await enqueue(redis_client, "sleep", {"ms": 3000})
    holder = settings_for(redis_url, consumer="holder", visibility_timeout_s=1.0)
    thief = settings_for(redis_url, consumer="thief", visibility_timeout_s=1.0)
    async with running(testing_app, holder):
        await eventually(
            lambda: _state_is(redis_client, job_id, "running"), what="the job to start"
        )
        # when another worker sweeps for idle entries all along
        async with running(testing_app, thief) as other:
            await eventually(
                lambda: _state_is(redis_client, job_id, "succeeded"), what="the job to finish"
            )
            # then it never took the job over: one delivery, no reclaim
            assert other.metrics.reclaimed._value.get() == 0
    [(entry_id, _)] = await redis_client.xrange(STREAM)
    assert (await record_of(redis_client, job_id)).get("attempts") == "1"
    assert entry_id


async def test_entries_of_a_dead_consumer_are_reclaimed_and_poison_ones_dead_lettered(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given two entries a worker started before it died, running one of them alone
    # since two earlier deaths were blamed on it; both re-delivered often (which must
    # not matter)
    await redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    fine = await enqueue(redis_client, "record", {"into": "done"})
    poison = await enqueue(redis_client, "record", {"into": "done"})
    rows = await redis_client.xreadgroup(GROUP, "ghost", {STREAM: ">"}, count=2)
    [fine_entry, poison_entry] = [entry_id for entry_id, _ in rows[0][1]]
    ghost = CrashLedger(redis_client, KEYS, "ghost")
    await redis_client.execute_command(*ghost.start_command(poison_entry))
    await redis_client.hset(KEYS.crashes, poison_entry, 2)
    await ghost.begin_solo(poison_entry)
    for _ in range(6):
        await redis_client.xclaim(STREAM, GROUP, "ghost", 0, [fine_entry, poison_entry])
    await asyncio.sleep(0.3)  # let the entries go idle past the visibility timeout
    # when a worker with max_deliveries=3 sweeps
    settings = settings_for(redis_url, visibility_timeout_s=0.2, max_deliveries=3)
    async with running(testing_app, settings) as worker:
        await eventually(
            lambda: _state_is(redis_client, fine, "succeeded"), what="the fine one to run"
        )
        await eventually(lambda: _dead_count(redis_client, 1), what="the poison one to be dead")
        assert worker.metrics.reclaimed._value.get() == 2
    # then the fine one ran (blamed once: it ran beside the suspect), the poison one,
    # blamed a third time, did not run and is a dead letter with the reason
    assert await redis_client.hgetall("done") == {fine: "1"}
    [dead] = await dead_letters(redis_client)
    assert dead["original_id"] == poison
    assert dead["reason"].startswith("deliveries: started 3 times by workers that died")
    assert await group_pending(redis_client) == 0


async def _state_is(client: AsyncRedis, job_id: str, state: str) -> bool:
    return (await record_of(client, job_id)).get("state") == state


async def _dead_count(client: AsyncRedis, n: int) -> bool:
    return len(await dead_letters(client)) == n


async def test_burst_mode_waits_for_delayed_retries_before_exiting(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    job_id = await enqueue(redis_client, "fail", {"times": 1, "into": "done"})
    settings = settings_for(redis_url, backoff_base_s=0.5, backoff_cap_s=0.5)
    assert await run_burst(testing_app, settings) == 0
    assert await redis_client.hgetall("done") == {job_id: "1"}


async def test_departed_consumers_are_removed_only_once_they_hold_nothing(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given a departed consumer with nothing pending and one still holding an entry
    await redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    await redis_client.xgroup_createconsumer(STREAM, GROUP, "gone-empty")
    await enqueue(redis_client, "record", {"into": "done"})
    rows = await redis_client.xreadgroup(GROUP, "gone-holding", {STREAM: ">"}, count=1)
    # (both with crash-accounting records)
    for name in ("gone-empty", "gone-holding"):
        ledger = CrashLedger(redis_client, KEYS, name)
        await redis_client.execute_command(*ledger.start_command(rows[0][1][0][0]))
        await ledger.begin_solo(rows[0][1][0][0])
    worker = Worker(testing_app, settings_for(redis_url))
    # when the worker prunes consumers idle for any time at all
    removed = await worker.reclaimer.prune_consumers(idle_ms=0)
    await worker.redis.aclose()
    # then only the empty one is gone, its records with it; the holder stays (records
    # too: they decide the blame) until its entry is reclaimed
    assert removed == ["gone-empty"]
    names = [c["name"] for c in await redis_client.xinfo_consumers(STREAM, GROUP)]
    assert names == ["gone-holding"]
    assert list(await redis_client.hgetall(KEYS.started)) == ["gone-holding"]
    assert list(await redis_client.hgetall(KEYS.solo)) == ["gone-holding"]
