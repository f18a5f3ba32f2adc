"""The limiter inside one worker: throttled jobs wait without losing an attempt, other
types pass, the metrics count it, and a worker without limits asks Redis nothing more."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Awaitable

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis as AsyncRedis
from worker.conftest import (
    KEYS,
    STREAM,
    dead_letters,
    enqueue,
    eventually,
    run_burst,
    running,
    settings_for,
)

from jobqueue.core.client import AsyncClient
from jobqueue.core.limits import TypeLimit
from jobqueue.core.wire import decode
from jobqueue.worker.app import App, JobContext
from jobqueue.worker.cli import settings_from
from jobqueue.worker.inflight import Delivery
from jobqueue.worker.limiter import Limiter
from jobqueue.worker.runner import Worker
from jobqueue.worker.settings import WorkerSettings
from jobqueue.worker.testing import app as testing_app


def slow_and_free(name: str) -> tuple[App, dict[str, list[int]]]:
    """An app of two types, ``slow`` (to limit) and ``free``, each recording the attempt
    number of every run."""
    app = App(name)
    done: dict[str, list[int]] = {"slow": [], "free": []}

    @app.handler("slow")
    async def slow(ctx: JobContext) -> None:
        done["slow"].append(ctx.job.attempts)

    @app.handler("free")
    async def free(ctx: JobContext) -> None:
        done["free"].append(ctx.job.attempts)

    return app, done


async def test_without_limits_there_is_no_limiter_and_no_limit_key(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    ids = [await enqueue(redis_client, "record", {"into": "done"}) for _ in range(20)]
    settings = settings_for(redis_url)
    assert Worker(testing_app, settings).limiter is None
    assert await run_burst(testing_app, settings) == 0
    assert await redis_client.hgetall("done") == {i: "1" for i in ids}
    assert [k async for k in redis_client.scan_iter(match="*:limit:*")] == []


async def test_a_throttled_job_waits_delayed_with_its_attempts_while_other_types_run(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # Given a type limited to 2 starts a second and an unlimited one,
    app, done = slow_and_free("limited")

    limits = (TypeLimit("slow", rate_jobs=2, rate_period_s=1.0),)
    settings = dataclasses.replace(settings_for(redis_url), limits=limits)
    # when eight of the first and eight of the other arrive together,
    slow_ids = []
    for _ in range(8):
        slow_ids.append(await enqueue(redis_client, "slow"))
        await enqueue(redis_client, "free")
    async with running(app, settings) as worker:
        # then the unlimited ones all run while the limited ones still wait,
        await eventually(lambda: _true(len(done["free"]) == 8), what="the free jobs")
        assert len(done["slow"]) < 8

        # a waiting one is in the delayed set, its attempts untouched,
        async def one_delayed() -> bool:
            for job_id in slow_ids:
                record = await redis_client.hgetall(KEYS.status(job_id))
                if record.get("state") == "delayed":
                    assert record["attempts"] == "0"
                    return await redis_client.zscore(KEYS.delayed, job_id) is not None
            return False

        await eventually(one_delayed, what="a throttled job in the delayed set")
        # and every one runs once, on its first attempt, none dead-lettered.
        await eventually(lambda: _true(len(done["slow"]) == 8), 60, "the limited jobs")
        registry = worker.metrics.registry
        labels = {"queue": STREAM, "type": "slow"}
        throttled = registry.get_sample_value(
            "jobqueue_jobs_throttled_total", {**labels, "limit": "rate"}
        )
        waits = registry.get_sample_value("jobqueue_limiter_wait_seconds_count", labels)
    assert done["slow"] == [0] * 8
    assert await dead_letters(redis_client) == []
    assert throttled is not None
    assert throttled >= 1
    # every admission is observed: each job's first, and one more per throttling
    assert waits == 8 + throttled
    assert (
        registry.get_sample_value("jobqueue_limiter_wait_seconds_count", {**labels, "type": "free"})
        is None
    )


async def test_a_concurrency_limit_of_one_runs_one_at_a_time(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    app = App("one-at-a-time")
    running_now, most = 0, 0

    @app.handler("single")
    async def single(ctx: JobContext) -> None:
        nonlocal running_now, most
        running_now += 1
        most = max(most, running_now)
        await asyncio.sleep(0.05)
        running_now -= 1

    settings = dataclasses.replace(
        settings_for(redis_url), limits=(TypeLimit("single", concurrency=1),)
    )
    for _ in range(6):
        await enqueue(redis_client, "single")
    assert await run_burst(app, settings) == 0
    assert most == 1
    assert await redis_client.zcard(KEYS.limit_leases("single")) == 0  # every lease given back


def test_flags_replace_the_limits_of_their_kind_only() -> None:
    env = WorkerSettings.from_env(
        {"JOBQUEUE_RATE_LIMITS": "a=1/1s", "JOBQUEUE_CONCURRENCY_LIMITS": "a=2,b=3"}
    )
    settings = settings_from(env, {"rate_limits": "c=5/1m"})
    assert settings.limits == (
        TypeLimit("a", concurrency=2),
        TypeLimit("b", concurrency=3),
        TypeLimit("c", rate_jobs=5, rate_period_s=60.0),
    )


async def _true(value: bool) -> bool:
    return value


async def test_a_client_enqueued_job_put_back_to_wait_leaves_the_queued_hash(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # Given record jobs enqueued by the client (their records start in {q}:queued),
    client = AsyncClient(redis_client)
    ids = [(await client.enqueue("record", {"into": "done"})).job_id for _ in range(3)]
    assert await redis_client.hlen(KEYS.queued) == 3
    # when a worker limited to one start a second puts some back to wait,
    limits = (TypeLimit("record", rate_jobs=1, rate_period_s=1.0),)
    settings = dataclasses.replace(settings_for(redis_url), limits=limits)
    async with running(testing_app, settings):

        async def one_delayed() -> bool:
            for job_id in ids:
                info = await client.get(job_id)
                if info is not None and info.state == "delayed":
                    # then it reads as delayed with no attempt made, and not as queued
                    assert info.attempts == 0
                    return not await redis_client.hexists(KEYS.queued, job_id)
            return False

        await eventually(one_delayed, what="a job put back to wait")
        await eventually(lambda: _true_async(redis_client.hlen("done"), 3), 30, "every job to run")
    assert await redis_client.hlen(KEYS.queued) == 0
    for job_id in ids:
        info = await client.get(job_id)
        assert info is not None
        assert (info.state, info.attempts) == ("succeeded", 1)


async def _true_async(count: Awaitable[int], expected: int) -> bool:
    return await count == expected


async def test_a_limit_above_a_thousand_a_second_spaces_starts_below_a_millisecond(
    redis_client: AsyncRedis,
) -> None:
    # Given a limit of 5,000 starts a second (one every 0.21 ms with the start guard),
    limit = TypeLimit("fast", rate_jobs=5000, rate_period_s=1.0)
    limiter = Limiter(redis_client, KEYS, [limit], 30.0, CollectorRegistry())
    # when one batch of 200 such jobs asks for its permits,
    deliveries = []
    for n in range(200):
        fields = {"id": f"fast-{n}", "type": "fast", "payload": "{}"}
        deliveries.append(Delivery(f"1-{n}", fields, decode(f"1-{n}", fields)))
    admission = await limiter.admit(deliveries)
    # then every job is granted, in order, 0.21 ms apart: the batch spans 42 ms, not the
    # 200 ms it would at one start a millisecond
    assert admission.deferred == []
    starts = [start_s for _, start_s in admission.granted]
    assert [d for d, _ in admission.granted] == deliveries
    gaps_ms = [(b - a) * 1000 for a, b in itertools.pairwise(starts)]
    assert all(0.2 <= gap <= 0.22 for gap in gaps_ms), (min(gaps_ms), max(gaps_ms))


async def test_a_foreign_limiter_key_holds_only_its_types_jobs_and_says_so(
    redis_client: AsyncRedis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a limited type whose rate key another application holds as a hash (it crashed
    # the read loop, and every job of the batch sat in flight until the worker stopped),
    app, done = slow_and_free("foreign-limiter")

    await redis_client.hset(KEYS.limit_rate("slow"), "not", "ours")
    limits = (TypeLimit("slow", rate_jobs=100, rate_period_s=1.0),)
    settings = dataclasses.replace(settings_for(redis_url), limits=limits)
    slow_ids = [await enqueue(redis_client, "slow") for _ in range(3)]
    for _ in range(3):
        await enqueue(redis_client, "free")
    # when a worker reads them together,
    async with running(app, settings):
        # then the other type's jobs run,
        await eventually(lambda: _true(len(done["free"]) == 3), what="the free jobs")

        # the limited ones wait in the delayed set with their attempts, none ran or died,
        async def all_delayed() -> bool:
            scores = [await redis_client.zscore(KEYS.delayed, i) for i in slow_ids]
            return None not in scores

        await eventually(all_delayed, what="the limited jobs delayed")
    assert done["slow"] == []
    assert await dead_letters(redis_client) == []
    # the foreign key is left as it was, and the log names it
    assert await redis_client.hgetall(KEYS.limit_rate("slow")) == {"not": "ours"}
    assert any(KEYS.limit_rate("slow") in r.getMessage() for r in caplog.records)
