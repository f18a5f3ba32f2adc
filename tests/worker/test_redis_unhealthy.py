"""A handler failing because the queue's Redis refuses writes does not burn an attempt.

A 15 s ``maxmemory`` episode once dead-lettered valid jobs: each handler's own Redis
write failed with ``OOM``, each failure counted as an attempt, and the worker's own
scripts kept landing (they start with a write Redis allows at ``maxmemory``), so it
never noticed. Now a write probe notices, the worker reads no new jobs meanwhile, and
an attempt that Redis failed runs again once Redis takes writes, uncounted.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis as AsyncRedis
from support.redis_server import RedisServer
from worker.conftest import (
    DEAD,
    enqueue,
    eventually,
    group_pending,
    record_of,
    running,
    settings_for,
)

from jobqueue.core.connection import async_redis
from jobqueue.worker.app import App, JobContext

app = App("writes-to-redis")


@app.handler("slow-record")
async def slow_record(ctx: JobContext) -> None:
    await asyncio.sleep(0.1)
    await ctx.redis.hincrby("done", ctx.job.id, 1)


@app.handler("always-fails")
async def always_fails(ctx: JobContext) -> None:
    raise RuntimeError("a failure of the job's own")


async def test_no_valid_job_is_dead_lettered_while_redis_is_at_maxmemory(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client: AsyncRedis = async_redis(own_redis.url)
    try:
        # given jobs whose handlers write to Redis, a small attempt budget with quick
        # retries (an OOM episode of a few seconds would use it up many times over)
        ids = [await enqueue(client, "slow-record") for _ in range(80)]
        settings = settings_for(own_redis.url, max_attempts=2, concurrency=8)
        async with running(app, settings) as worker:

            async def some_done() -> bool:
                return await client.hlen("done") >= 5

            await eventually(some_done, 30, "the first jobs")
            # when Redis refuses writes (maxmemory reached, noeviction) for a while
            await client.config_set("maxmemory-policy", "noeviction")
            await client.config_set("maxmemory", "1")

            async def noticed() -> bool:
                return not worker.health.ok and worker.executor.held > 0

            await eventually(noticed, 30, "the worker to notice and hold attempts")
            await asyncio.sleep(3)
            await client.config_set("maxmemory", "0")

            # then every job runs to success once Redis takes writes again
            async def all_done() -> bool:
                return await client.hlen("done") == 80 and await group_pending(client) == 0

            await eventually(all_done, 60, "every job recorded")
            assert worker.health.ok
            assert worker.health.episodes >= 1
        # none was dead-lettered, none ran its write twice, none counted an attempt
        assert await client.xlen(DEAD) == 0
        assert await client.hgetall("done") == {i: "1" for i in ids}
        states = [(await record_of(client, i)).get("attempts") for i in ids]
        assert set(states) == {"1"}
        # and each held attempt's log line says so in a field (a JSON log's reader, such as
        # the chaos harness, tells these re-runs from others by it)
        held = {r.job_id for r in caplog.records if getattr(r, "redis_unavailable", False)}
        assert held
        assert held <= set(ids)
    finally:
        await client.aclose()


async def test_a_job_failing_on_its_own_still_counts_its_attempts(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given a healthy Redis and a job that fails for reasons of its own
    job_id = await enqueue(redis_client, "always-fails")
    # when a worker runs it
    async with running(app, settings_for(redis_url, max_attempts=3)) as worker:

        async def dead() -> bool:
            return await redis_client.xlen(DEAD) == 1

        await eventually(dead, 30, "the dead letter")
        held = worker.executor.held
    # then its attempts counted as usual: nothing was held for Redis's sake
    [(_, letter)] = await redis_client.xrange(DEAD)
    assert (letter["original_id"], letter["attempts"]) == (job_id, "3")
    assert held == 0
