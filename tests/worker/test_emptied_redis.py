"""An emptied Redis (FLUSHALL, a deleted stream) is recovered from quietly.

A worker blocked in ``XREADGROUP`` when its stream vanished once logged "read loop
crashed ... UNBLOCKED the stream key no longer exists" with a traceback, and the crash
counted toward ``max_loop_crashes``. Now the group is recreated, one line is logged, and
the worker goes on with the jobs enqueued afterwards.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.asyncio import Redis as AsyncRedis
from worker.conftest import STREAM, enqueue, eventually, group_pending, running, settings_for

from jobqueue.worker.testing import app as testing_app


@pytest.mark.parametrize("empty", ["flushall", "delete stream"])
async def test_a_worker_recovers_quietly_when_its_stream_vanishes(
    redis_client: AsyncRedis, redis_url: str, caplog: pytest.LogCaptureFixture, empty: str
) -> None:
    caplog.set_level(logging.INFO, "jobqueue")
    # given a worker idle on an empty stream (a blocking read on the wire) that has
    # already run one job, so its periodic loops hold state of the group too
    settings = settings_for(redis_url, block_ms=2000, max_loop_crashes=2)
    async with running(testing_app, settings) as worker:
        first = await enqueue(redis_client, "record", {"into": "done"})

        async def first_done() -> bool:
            return await redis_client.hget("done", first) == "1"

        await eventually(first_done, 20, "the first job")
        await asyncio.sleep(0.3)  # the next read is blocking
        # when Redis is emptied under it, twice (more than max_loop_crashes crashes)
        for _ in range(2):
            if empty == "flushall":
                await redis_client.flushall()
            else:
                await redis_client.delete(STREAM)
            await asyncio.sleep(0.5)
        # then jobs enqueued afterwards run, and nothing stays pending
        ids = [await enqueue(redis_client, "record", {"into": "after"}) for _ in range(5)]

        async def all_done() -> bool:
            return await redis_client.hlen("after") == 5 and await group_pending(redis_client) == 0

        await eventually(all_done, 30, "the jobs enqueued after the flush")
        assert not worker.stopping.is_set()
        assert worker.read_loop.restarts == 0  # no crash counted
    assert await redis_client.hgetall("after") == {i: "1" for i in ids}
    # and the log says so in plain lines, without a traceback
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    vanished = [r for r in caplog.records if "vanished" in r.getMessage()]
    assert 1 <= len(vanished) <= 4, [r.getMessage() for r in caplog.records]
