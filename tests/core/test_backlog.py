"""Queue sampling: lag stays right where XINFO's own lag field is NULL or missing."""

from __future__ import annotations

from redis.asyncio import Redis

from jobqueue.core.backlog import sample_queue
from jobqueue.core.keys import QueueKeys

KEYS = QueueKeys()


async def add_jobs(redis: Redis, count: int) -> list[str]:
    return [await redis.xadd(KEYS.stream, {"type": "noop", "payload": "{}"}) for _ in range(count)]


async def test_missing_stream_is_an_empty_queue(redis_client: Redis) -> None:
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.length, sample.lag, sample.pending, sample.delayed) == (0, 0, 0, 0)


async def test_without_a_group_every_entry_is_lag(redis_client: Redis) -> None:
    await add_jobs(redis_client, 3)
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.lag, sample.lag_source) == (3, "no-group")


async def test_group_lag_and_pending_after_a_read(redis_client: Redis) -> None:
    await add_jobs(redis_client, 5)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    await redis_client.xreadgroup(KEYS.group, "c1", {KEYS.stream: ">"}, count=2)
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.lag, sample.pending, sample.backlog) == (3, 2, 5)


async def test_lag_is_counted_when_redis_reports_null_after_xdel(redis_client: Redis) -> None:
    ids = await add_jobs(redis_client, 6)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    await redis_client.xreadgroup(KEYS.group, "c1", {KEYS.stream: ">"}, count=1)
    await redis_client.xdel(KEYS.stream, ids[3])  # deleted after the group's position
    groups = await redis_client.xinfo_groups(KEYS.stream)
    assert groups[0]["lag"] is None  # Redis gives up here; we must not
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.lag, sample.lag_source) == (4, "counted")


async def test_delayed_and_dead_letters_are_counted(redis_client: Redis) -> None:
    await redis_client.zadd(KEYS.delayed, {"a": 1, "b": 2})
    await redis_client.xadd(KEYS.dead, {"reason": "x"})
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.delayed, sample.dead_letters) == (2, 1)
