"""Local mode removes its gone workers' consumers, and nobody else's, never with jobs."""

from __future__ import annotations

import redis
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import QueueKeys
from jobqueue.local.consumers import local_consumer_pattern, reap_local_consumers

KEYS = QueueKeys()


def consume(client: redis.Redis, consumer: str, count: int) -> None:
    client.xreadgroup(KEYS.group, consumer, {KEYS.stream: ">"}, count=count)


async def test_only_gone_local_consumers_without_pending_entries_are_removed(
    redis_client: AsyncRedis, sync_redis: redis.Redis
) -> None:
    sync_redis.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)
    for n in range(3):
        sync_redis.xadd(KEYS.stream, {"type": "noop", "payload": "{}", "n": str(n)})
    # Given: a gone local worker holding nothing, a gone one holding a job, a running
    # one, and a consumer of some other machine.
    gone = "q-0a1b-w1"
    sync_redis.xgroup_createconsumer(KEYS.stream, KEYS.group, gone)
    consume(sync_redis, "q-0a1b-w2", 1)  # holds a pending entry
    consume(sync_redis, "q-0a1b-w3", 1)
    consume(sync_redis, "elsewhere-1", 1)

    result = await reap_local_consumers(
        redis_client, KEYS, local_consumer_pattern("q"), running=["q-0a1b-w3"]
    )

    assert result.deleted == (gone,)
    assert result.kept_pending == ("q-0a1b-w2",)
    left = {c["name"] for c in sync_redis.xinfo_consumers(KEYS.stream, KEYS.group)}
    assert left == {"q-0a1b-w2", "q-0a1b-w3", "elsewhere-1"}


async def test_a_queue_without_a_group_has_nothing_to_remove(redis_client: AsyncRedis) -> None:
    result = await reap_local_consumers(redis_client, KEYS, local_consumer_pattern("q"), [])

    assert result.deleted == ()
