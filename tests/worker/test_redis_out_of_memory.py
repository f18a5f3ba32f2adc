"""Redis refusing writes (``maxmemory`` reached) is ridden out like an outage.

A refused flush (``OOM``) once counted as a crash of the read loop, and a few in a row
ended the worker as beyond repair: a crash loop for as long as Redis stayed full. Now
it is transient: the worker backs off and repeats, and nothing is lost once memory is
available again.
"""

from __future__ import annotations

import asyncio

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
from jobqueue.worker.testing import app as testing_app


async def test_a_worker_rides_out_redis_refusing_writes_and_loses_nothing(
    own_redis: RedisServer,
) -> None:
    client: AsyncRedis = async_redis(own_redis.url)
    try:
        # given record jobs and a job that fails once (so it needs a retry written)
        ids = [await enqueue(client, "record", {"into": "done"}) for _ in range(30)]
        flaky = await enqueue(client, "fail", {"times": 1, "into": "done"})
        # and a Redis that refuses every write from now on
        await client.config_set("maxmemory", "1")
        settings = settings_for(own_redis.url, max_loop_crashes=3)
        async with running(testing_app, settings) as worker:
            # when the worker runs for a while against it
            await asyncio.sleep(1.5)
            assert not worker.stopping.is_set()  # still running, not beyond repair
            assert await client.hlen("done") == 0  # nothing could be recorded
            # and then memory is available again
            await client.config_set("maxmemory", "0")

            async def all_done() -> bool:
                return await client.hlen("done") == 31 and await group_pending(client) == 0

            await eventually(all_done, 30, "every job recorded once")
        # then every job ran to success exactly once as far as Redis knows, the flaky
        # one after its retry, and nothing was dead-lettered
        recorded = await client.hgetall("done")
        assert recorded == {**{i: "1" for i in ids}, flaky: "1"}
        assert await client.xlen(DEAD) == 0
        assert (await record_of(client, flaky)).get("state") == "succeeded"
    finally:
        await client.aclose()
