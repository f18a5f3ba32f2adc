"""Deleting a queue's keys (retentionPolicy Delete) removes every key of the table in
`jobqueue.core.keys` and nothing of another queue."""

from __future__ import annotations

from redis.asyncio import Redis

from jobqueue.core.keys import QueueKeys
from jobqueue.operator.reconcile import delete_queue_keys

JOB = "01JABCDEFGHJKMNPQRSTVWXYZ0"


async def write_every_key(redis: Redis, keys: QueueKeys) -> list[str]:
    done = keys.done(JOB)
    assert done is not None
    for stream in (keys.stream, keys.dead, keys.lane("high"), keys.settled):
        await redis.xadd(stream, {"a": "b"})
    await redis.zadd(keys.delayed, {JOB: 1})
    await redis.zadd(keys.waiting, {keys.status(JOB): 1})
    for hash_key in (keys.delayed_jobs, keys.queued, done, keys.status(JOB), keys.health):
        await redis.hset(hash_key, JOB, "x")
    for hash_key in (keys.started, keys.solo, keys.crashes):
        await redis.hset(hash_key, "c", "x")
    await redis.set(keys.idempotency("k"), JOB)
    return [key async for key in redis.scan_iter(match="*")]


async def test_every_key_of_the_queue_goes_and_no_other(redis_client: Redis) -> None:
    other = QueueKeys("other:work")
    kept = await write_every_key(redis_client, other)
    written = await write_every_key(redis_client, QueueKeys("purge:work"))

    removed = await delete_queue_keys(redis_client, QueueKeys("purge:work"))

    assert removed == len(written) - len(kept)
    assert sorted([key async for key in redis_client.scan_iter(match="*")]) == sorted(kept)
