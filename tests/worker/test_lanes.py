"""Priority lanes in the worker: each lane its own stream, read highest first (or by
weight), with everything done per stream (acks, retries, delays, dead letters, crash
accounting, reclaim, burst) working per lane. In-process workers where the order of
starts is the point, worker processes where a death is."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from support.records import sync_state
from support.worker_process import WorkerProcess, wait_for
from worker.conftest import (
    GROUP,
    KEYS,
    STREAM,
    eventually,
    record_of,
    run_burst,
    running,
    settings_for,
)

from jobqueue.core.client import AsyncClient
from jobqueue.core.lanes import parse_lanes
from jobqueue.core.limits import combine, parse_concurrency_limits
from jobqueue.core.settings import QueueSettings
from jobqueue.core.wire import new_job_id, utc_now_iso
from jobqueue.worker.app import App, JobContext
from jobqueue.worker.settings import WorkerSettings
from jobqueue.worker.testing import app as testing_app

LANES_TEXT = "high:8-10,normal:4-7,low:1-3"
LANES = parse_lanes(LANES_TEXT)
HIGH, NORMAL, LOW = KEYS.lane("high"), STREAM, KEYS.lane("low")
PRIORITY = {HIGH: 9, NORMAL: 5, LOW: 2}
LANE_OF = {9: "high", 5: "normal", 2: "low"}
ALL = (HIGH, NORMAL, LOW)


def fields_of(job_type: str, payload: dict[str, Any], priority: int) -> dict[str, str]:
    return {
        "id": new_job_id(),
        "type": job_type,
        "payload": orjson.dumps(payload).decode(),
        "priority": str(priority),
        "enqueued_at": utc_now_iso(),
        "attempts": "0",
    }


async def put(
    client: AsyncRedis, stream: str, job_type: str, payload: dict[str, Any], entry_id: str = "*"
) -> str:
    """XADD a job to a lane stream, as the producer routes it (priority of the lane)."""
    fields = fields_of(job_type, payload, PRIORITY[stream])
    await client.xadd(stream, fields, id=entry_id)  # type: ignore[arg-type]
    return fields["id"]


def lane_settings(redis_url: str, **overrides: Any) -> WorkerSettings:
    queue = QueueSettings(redis_url=redis_url, lanes=LANES)
    return settings_for(redis_url, queue=queue, **overrides)


def order_app(starts: list[str], sleep_s: float = 0.0) -> App:
    """``job`` records the lane of each start (by priority), in order."""
    app = App("lanes-test")

    @app.handler("job")
    async def job(ctx: JobContext) -> None:
        starts.append(LANE_OF[ctx.job.priority])
        if sleep_s:
            await asyncio.sleep(sleep_s)

    return app


async def pending_total(client: AsyncRedis) -> int:
    total = 0
    for stream in ALL:
        if await client.exists(stream):
            total += int((await client.xpending(stream, GROUP))["pending"])
    return total


async def test_lanes_are_served_highest_first(redis_client: AsyncRedis, redis_url: str) -> None:
    # given a low backlog, then normal jobs, then high jobs, all enqueued before the
    # worker starts
    for stream, n in ((LOW, 30), (NORMAL, 10), (HIGH, 10)):
        for _ in range(n):
            await put(redis_client, stream, "job", {})
    starts: list[str] = []
    # when one worker runs them
    async with running(order_app(starts), lane_settings(redis_url, concurrency=4)):
        await eventually(lambda: _true(len(starts) == 50), what="every job to start")
    # then every high job started before any normal one, and every normal before any low
    assert starts == ["high"] * 10 + ["normal"] * 10 + ["low"] * 30
    await eventually(lambda: _equal(pending_total(redis_client), 0), what="every ack")


async def test_high_jobs_added_under_a_low_backlog_start_next(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given one worker saturated by a backlog of 300 low jobs
    for _ in range(300):
        await put(redis_client, LOW, "job", {})
    starts: list[str] = []
    settings = lane_settings(redis_url, concurrency=4)
    async with running(order_app(starts, sleep_s=0.01), settings):
        await eventually(lambda: _true(len(starts) >= 20), what="the backlog to be worked")
        # when five high jobs are enqueued
        for _ in range(5):
            await put(redis_client, HIGH, "job", {})
        before = len(starts)
        await eventually(lambda: _true(starts.count("high") == 5), what="the high jobs")
    # then they started next: only the low jobs already delivered (at most the
    # concurrency plus one read ahead) started in between, of the ~270 still waiting
    last_high = max(i for i, lane in enumerate(starts) if lane == "high")
    between = starts[before:last_high].count("low")
    assert between <= 4 + 2 + 2, starts[before : last_high + 1]


async def test_weighted_mode_serves_the_lanes_by_weight(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given 300 jobs in each lane, and a worker in weighted mode (6:3:1)
    for stream in (LOW, NORMAL, HIGH):
        for _ in range(300):
            await put(redis_client, stream, "job", {})
    starts: list[str] = []
    weights = (("high", 6), ("normal", 3), ("low", 1))
    settings = lane_settings(redis_url, concurrency=8, lane_mode="weighted", lane_weights=weights)
    # when it has started 400 of them (every lane still backlogged)
    async with running(order_app(starts), settings):
        await eventually(lambda: _true(len(starts) >= 400), what="400 starts")
    first = starts[:400]
    # then each lane got its weight's share (the low lane was not starved as in strict
    # order, where it would get none of them)
    shares = {lane: first.count(lane) / 400 for lane in ("high", "normal", "low")}
    assert 0.5 <= shares["high"] <= 0.7, shares
    assert 0.2 <= shares["normal"] <= 0.4, shares
    assert 0.05 <= shares["low"] <= 0.15, shares


async def test_a_retry_returns_to_its_lane(redis_client: AsyncRedis, redis_url: str) -> None:
    # given a high job that fails once
    job_id = await put(redis_client, HIGH, "fail", {"times": 1, "into": "done"})
    # when a worker runs it to success
    async with running(testing_app, lane_settings(redis_url)):
        await eventually(lambda: _done(redis_client, [job_id]), what="the retry to succeed")
    # then its second attempt came from the high lane again
    assert await redis_client.xlen(HIGH) == 2
    assert await redis_client.xlen(NORMAL) == 0
    assert await redis_client.xlen(LOW) == 0
    assert await pending_total(redis_client) == 0


async def test_a_delayed_job_is_promoted_into_the_lane_of_its_priority(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given delayed jobs due now: one of priority 2 (low), one of 9 (high), one with a
    # priority no lane holds (a hand-written entry)
    fields = {
        "low": fields_of("record", {"into": "done"}, 2),
        "high": fields_of("record", {"into": "done"}, 9),
        "odd": {**fields_of("record", {"into": "done"}, 5), "priority": "x"},
    }
    for job in fields.values():
        await redis_client.zadd(KEYS.delayed, {job["id"]: 0})
        await redis_client.hset(KEYS.delayed_jobs, job["id"], orjson.dumps(job).decode())
    # when a worker promotes and runs them
    async with running(testing_app, lane_settings(redis_url)):
        ids = [job["id"] for job in fields.values()]
        await eventually(lambda: _settled(redis_client, ids), what="the jobs to settle")
    # then each went to the stream of its lane; the one without a valid priority to the
    # queue's own stream (the default lane), where it was dead-lettered as malformed
    assert [f["id"] for _, f in await redis_client.xrange(LOW)] == [fields["low"]["id"]]
    assert [f["id"] for _, f in await redis_client.xrange(HIGH)] == [fields["high"]["id"]]
    assert [f["id"] for _, f in await redis_client.xrange(NORMAL)] == [fields["odd"]["id"]]
    [(_, dead)] = await redis_client.xrange(KEYS.dead)
    assert dead["original_id"] == fields["odd"]["id"]


async def test_a_dead_letter_names_its_lane_stream_and_replay_returns_it_there(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given a low job that always fails, with one attempt allowed
    job_id = await put(redis_client, LOW, "fail", {})
    # when a worker runs it
    async with running(testing_app, lane_settings(redis_url, max_attempts=1)):
        await eventually(lambda: _equal(redis_client.xlen(KEYS.dead), 1), what="a dead letter")
        # then the dead letter says it came from the low lane's stream
        [(dead_id, dead)] = await redis_client.xrange(KEYS.dead)
        assert (dead["original_id"], dead["source_stream"]) == (job_id, LOW)
        # and a replay puts it back there, where the worker runs it again
        async with AsyncClient.from_url(redis_url, lanes=LANES) as client:
            assert await client.replay(dead_id) is not None

        async def dead_again() -> bool:
            return [i for i, _ in await redis_client.xrange(KEYS.dead)] not in ([], [dead_id])

        await eventually(dead_again, what="the replayed job to fail again")
    assert await redis_client.xlen(LOW) == 2
    [(_, again)] = await redis_client.xrange(KEYS.dead)
    assert (again["original_id"], again["source_stream"]) == (job_id, LOW)
    assert await redis_client.xlen(NORMAL) == 0
    assert await pending_total(redis_client) == 0


async def test_lane_jobs_keep_their_claims_return_results_and_can_be_cancelled(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given a low job that outlasts the visibility timeout, a high job that returns a
    # value and a high job that runs until cancelled
    long_job = await put(redis_client, LOW, "sleep", {"ms": 1500})
    echo = await put(redis_client, HIGH, "echo", {"value": {"n": 7}})
    victim = await put(redis_client, HIGH, "sleep", {"ms": 60_000})
    holder = lane_settings(redis_url, consumer="holder", visibility_timeout_s=0.6)
    thief = lane_settings(redis_url, consumer="thief", visibility_timeout_s=0.6)
    async with running(testing_app, holder) as worker:
        await eventually(lambda: _states(redis_client, [victim], "running"), what="a start")
        # when another worker sweeps for idle entries all along, and the client asks to
        # cancel the running high job
        async with running(testing_app, thief) as other:
            await redis_client.hset(KEYS.status(victim), "cancel_requested", "1")
            await eventually(lambda: _done(redis_client, [long_job, echo]), what="the jobs")
            await eventually(lambda: _states(redis_client, [victim], "cancelled"), what="cancel")
            # then the heartbeat kept every lane's claims: nothing was taken over
            assert other.metrics.reclaimed._value.get() == 0
        delivered = {
            sample.labels["lane"]: sample.value
            for metric in worker.metrics.registry.collect()
            if metric.name == "jobqueue_lane_deliveries"
            for sample in metric.samples
            if sample.name.endswith("_total")
        }
    # the echo's result was stored with its success, every entry acknowledged in its
    # own lane, and each lane's deliveries counted
    assert (await record_of(redis_client, echo)).get("result") == '{"n":7}'
    assert await pending_total(redis_client) == 0
    assert delivered == {"high": 2.0, "normal": 0.0, "low": 1.0}


async def test_entry_ids_repeated_across_lanes_are_different_jobs(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given two jobs with the same entry id in two lanes, held running together, of a
    # type under a concurrency limit (leases are keyed per entry)
    ids = [
        await put(redis_client, stream, "hold", {"until": "go", "into": "done"}, "7-1")
        for stream in (HIGH, LOW)
    ]
    settings = lane_settings(redis_url, concurrency=4, limits=_concurrency("hold", 2))
    async with running(testing_app, settings):
        await eventually(lambda: _states(redis_client, ids, "running"), what="both to run")
        assert await redis_client.zcard(KEYS.limit_leases("hold")) == 2
        # when they are let go
        await redis_client.set("go", 1)
        await eventually(lambda: _done(redis_client, ids), what="both to succeed")
    # then each ran once and was acknowledged in its own stream
    assert await redis_client.hgetall("done") == dict.fromkeys(ids, "1")
    assert await pending_total(redis_client) == 0


async def test_pending_stays_within_concurrency_when_every_lane_gets_work(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    for concurrency in (1, 2, 3):
        await redis_client.flushdb()
        # given an idle worker of fewer (or as many) slots as lanes, blocked on them
        settings = lane_settings(redis_url, concurrency=concurrency, block_ms=500)
        async with running(testing_app, settings) as worker:
            await eventually(lambda: _true(worker.read_loop.drained.is_set()), what="reading")
            await asyncio.sleep(0.1)
            # when a job arrives in every lane at once
            async with redis_client.pipeline(transaction=False) as pipe:
                for stream in (LOW, NORMAL, HIGH):
                    pipe.xadd(stream, fields_of("hold", {"until": "go"}, PRIORITY[stream]))
                await pipe.execute()
            await eventually(
                lambda c=concurrency: _equal(pending_total(redis_client), c), what="the work"
            )
            await asyncio.sleep(0.3)
            # then the worker holds no more entries than it has slots
            assert await pending_total(redis_client) == concurrency
            await redis_client.set("go", 1)
            await eventually(lambda: _equal(pending_total(redis_client), 0), what="acks")


async def test_a_one_slot_worker_wakes_for_a_job_in_any_lane(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given an idle worker of one slot whose reads block for 3 s
    settings = lane_settings(redis_url, concurrency=1, block_ms=3000)
    async with running(testing_app, settings) as worker:
        await eventually(lambda: _true(worker.read_loop.drained.is_set()), what="reading")
        await asyncio.sleep(0.2)
        # when a job arrives in the low lane
        job_id = await put(redis_client, LOW, "record", {"into": "done"})
        # then it runs before the blocking read would have timed out
        await eventually(lambda: _done(redis_client, [job_id]), timeout_s=2.5, what="the job")


async def test_burst_waits_for_every_lane(redis_client: AsyncRedis, redis_url: str) -> None:
    # given jobs in the low lane, two of them held by a consumer that died
    for stream in ALL:
        await redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    ids = [await put(redis_client, LOW, "record", {"into": "done"}) for _ in range(4)]
    await redis_client.xreadgroup(GROUP, "ghost", {LOW: ">"}, count=2)
    # when a burst worker runs (the queue's own stream is empty from the start)
    settings = lane_settings(redis_url, visibility_timeout_s=0.3)
    assert await run_burst(testing_app, settings) == 0
    # then it stopped only once the low lane was done, the dead consumer's two included
    assert sorted(await redis_client.hgetall("done")) == sorted(ids)
    assert await pending_total(redis_client) == 0


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Worker processes with the lanes declared, SIGKILLed at teardown if alive."""
    started: list[WorkerProcess] = []

    def start(redis_url: str, consumer: str, *args: str) -> WorkerProcess:
        env = {"JOBQUEUE_LANES": LANES_TEXT}
        worker = WorkerProcess(redis_url, consumer, *args, log_dir=tmp_path, env=env).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def sync_put(client: redis.Redis, stream: str, job_type: str, payload: dict[str, Any]) -> str:
    fields = fields_of(job_type, payload, PRIORITY[stream])
    client.xadd(stream, fields)  # type: ignore[arg-type]
    return fields["id"]


def states(client: redis.Redis, ids: list[str]) -> list[str | None]:
    return [sync_state(client, i, KEYS) for i in ids]


def test_a_killed_workers_lane_entries_are_reclaimed(
    sync_redis: redis.Redis, redis_url: str, spawn: Any
) -> None:
    # given a worker running jobs from the high and the low lane
    ids = [sync_put(sync_redis, s, "hold", {"until": "go", "into": "done"}) for s in (HIGH, LOW)]
    quick = ("--visibility-timeout-s", "1", "--concurrency", "4")
    a = spawn(redis_url, "pod-a", *quick)
    wait_for(lambda: states(sync_redis, ids) == ["running"] * 2, "the jobs to run")
    # when it is SIGKILLed and another worker is there
    a.kill()
    b = spawn(redis_url, "pod-b", *quick)
    wait_for(
        lambda: all(
            c["name"] == "pod-b"
            for s in (HIGH, LOW)
            for c in sync_redis.xpending(s, GROUP)["consumers"]
        ),
        "pod-b to take both entries over",
    )
    sync_redis.set("go", 1)
    # then both jobs finish there, each acknowledged in its own lane
    wait_for(lambda: states(sync_redis, ids) == ["succeeded"] * 2, "the jobs to succeed")
    assert sync_redis.xlen(KEYS.dead) == 0, b.output()
    assert all(sync_redis.xpending(s, GROUP)["pending"] == 0 for s in (HIGH, LOW))


def test_a_poison_job_in_a_lane_is_dead_lettered_and_innocents_survive(
    sync_redis: redis.Redis, redis_url: str, spawn: Any
) -> None:
    # given innocent jobs in the low lane read with a job of the high lane that kills
    # its worker; entry ids of the two lanes overlap, so crash records are per lane
    innocent = [sync_put(sync_redis, LOW, "sleep", {"ms": 300, "into": "done"}) for _ in range(3)]
    poison = sync_put(sync_redis, HIGH, "crash", {})
    # when the pod keeps being restarted under the same name until its queue is empty
    args = ("--visibility-timeout-s", "2", "--max-deliveries", "2", "--concurrency", "4")
    exits = []
    for _ in range(6):
        worker = spawn(redis_url, "pod-c", *args, "--burst")
        exits.append(worker.wait(60))
        if exits[-1] == 0:
            break
    # then the poison job, blamed for both crashes, is the only dead letter, with its
    # lane's stream; the innocents ran
    assert exits[-1] == 0, worker.output()
    assert exits.count(137) == 2, exits
    assert sorted(sync_redis.hgetall("done")) == sorted(innocent)
    [(_, dead)] = sync_redis.xrange(KEYS.dead)
    assert (dead["original_id"], dead["source_stream"]) == (poison, HIGH)
    assert dead["reason"].startswith("deliveries: started 2 times by workers that died")


def _concurrency(job_type: str, limit: int) -> Any:
    return combine({}, parse_concurrency_limits(f"{job_type}={limit}"))


async def _true(value: bool) -> bool:
    return value


async def _equal(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _states(client: AsyncRedis, ids: list[str], state: str) -> bool:
    return [(await record_of(client, i)).get("state") for i in ids] == [state] * len(ids)


async def _done(client: AsyncRedis, ids: list[str]) -> bool:
    return await _states(client, ids, "succeeded")


async def _settled(client: AsyncRedis, ids: list[str]) -> bool:
    states = [(await record_of(client, i)).get("state") for i in ids]
    return all(state in ("succeeded", "dead") for state in states)
