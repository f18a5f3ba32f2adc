"""Concurrent single-job requests share script calls, each still answered on its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from producer.http_api import README_EXAMPLE, Api
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.client import AsyncClient, InvalidNewJob, NewJob
from jobqueue.core.connection import async_redis
from jobqueue.core.keys import QueueKeys
from jobqueue.producer.batching import EnqueueBatcher
from jobqueue.producer.context import BATCHER

KEYS = QueueKeys()


@pytest.fixture
async def probe(redis_url: str) -> AsyncIterator[AsyncRedis]:
    """A second connection, to hold Redis's writes back and watch it meanwhile."""
    client = async_redis(redis_url)
    yield client
    await client.execute_command("CLIENT", "UNPAUSE")
    await client.aclose()


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``condition`` until true; fail after 30 s."""
    deadline = time.monotonic() + 30
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def waiting(batcher: EnqueueBatcher, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return batcher.waiting == count

    return check


async def script_calls(redis: AsyncRedis) -> int:
    return int((await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0))


def call_held(probe: AsyncRedis) -> Callable[[], Awaitable[bool]]:
    """Whether a script call is on hold in Redis (its writes are paused)."""

    async def check() -> bool:
        return int((await probe.info("clients"))["blocked_clients"]) == 1

    return check


async def test_jobs_arriving_during_a_call_go_together_and_a_bad_one_fails_alone(
    redis_client: AsyncRedis, probe: AsyncRedis
) -> None:
    batcher = EnqueueBatcher(AsyncClient(redis_client))
    await AsyncClient(redis_client).enqueue("warm", {})  # the script is loaded
    before = await script_calls(probe)
    await probe.execute_command("CLIENT", "PAUSE", "30000", "WRITE")

    first = asyncio.create_task(batcher.enqueue(NewJob("report", {"n": 1})))
    await until(call_held(probe), "the first call")
    later = [
        asyncio.create_task(batcher.enqueue(NewJob("report", {"n": 2}))),
        asyncio.create_task(batcher.enqueue(NewJob("report", {"n": 3}, priority=11))),
        asyncio.create_task(batcher.enqueue(NewJob("report", {"n": 4}))),
    ]
    await until(waiting(batcher, 3), "the later jobs to queue up")
    await probe.execute_command("CLIENT", "UNPAUSE")
    results = await asyncio.gather(first, *later, return_exceptions=True)

    assert [type(r).__name__ for r in results] == [
        "Enqueued",
        "Enqueued",
        "InvalidNewJob",
        "Enqueued",
    ]
    assert isinstance(results[2], InvalidNewJob)
    assert "priority" in results[2].reason
    assert await script_calls(probe) - before == 2
    assert await redis_client.xlen(KEYS.stream) == 1 + 3


async def test_concurrent_posts_are_answered_each_with_its_own_job(
    api: Api, redis_client: AsyncRedis, probe: AsyncRedis
) -> None:
    await api.call("POST", "/jobs", data=README_EXAMPLE)  # the script is loaded
    before = await script_calls(probe)
    await probe.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
    batcher = api.server.app[BATCHER]

    first = asyncio.create_task(api.call("POST", "/jobs", data=README_EXAMPLE))
    await until(call_held(probe), "the first call")
    others = [
        asyncio.create_task(api.call("POST", "/jobs", data=README_EXAMPLE)) for _ in range(20)
    ]
    await until(waiting(batcher, 20), "twenty requests to queue up")
    await probe.execute_command("CLIENT", "UNPAUSE")
    answers = await asyncio.gather(first, *others)

    assert {status for status, _ in answers} == {202}
    assert len({body["jobId"] for _, body in answers}) == 21
    entries = await redis_client.xrange(KEYS.stream)
    assert {body["streamEntryId"] for _, body in answers} == {e[0] for e in entries[1:]}
    assert await script_calls(probe) - before == 2


async def test_a_job_failing_in_any_way_fails_alone_in_a_shared_call(
    redis_client: AsyncRedis, probe: AsyncRedis
) -> None:
    """An encoding TypeError, an undecodable key, a script error in Redis: each stays the
    outcome of its own job; the jobs sharing the round trip are enqueued once each."""
    batcher = EnqueueBatcher(AsyncClient(redis_client))
    await AsyncClient(redis_client).enqueue("warm", {})
    await redis_client.rpush(KEYS.status("taken"), "not a status record")  # WRONGTYPE
    await probe.execute_command("CLIENT", "PAUSE", "30000", "WRITE")

    first = asyncio.create_task(batcher.enqueue(NewJob("report", {"n": 0})))
    await until(call_held(probe), "the first call")
    jobs = [
        NewJob("report", {"n": 1}),
        NewJob("report", {"n": {1, 2}}),  # orjson: TypeError
        NewJob("report", {"n": 3}, idempotency_key="caf\udce9"),  # undecodable header bytes
        NewJob("report", {"n": 4}),
        NewJob("report", {"n": 5}, job_id="taken"),  # Redis: WRONGTYPE mid-script
        NewJob("report", {"n": 6}),
    ]
    later = [asyncio.create_task(batcher.enqueue(job)) for job in jobs]
    await until(waiting(batcher, len(jobs)), "the later jobs to queue up")
    await probe.execute_command("CLIENT", "UNPAUSE")
    results = await asyncio.gather(first, *later, return_exceptions=True)

    assert [type(r).__name__ for r in results] == [
        "Enqueued",
        "Enqueued",
        "InvalidNewJob",
        "InvalidNewJob",
        "Enqueued",
        "ResponseError",
        "Enqueued",
    ]
    assert "payload" in str(results[2])
    assert "UTF-8" in str(results[3])
    entries = await redis_client.xrange(KEYS.stream)
    payloads = sorted(fields["payload"] for _, fields in entries[1:])
    assert payloads == ['{"n":0}', '{"n":1}', '{"n":4}', '{"n":6}']
