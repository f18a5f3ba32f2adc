"""Dead consumers go; a consumer holding pending entries never does (real Redis)."""

from __future__ import annotations

from redis.asyncio import Redis

from jobqueue.core.keys import QueueKeys
from jobqueue.operator.consumers import reap_dead_consumers

KEYS = QueueKeys(stream="reap:work")


async def read_one(redis: Redis, consumer: str, ack: bool) -> None:
    taken = await redis.xreadgroup(KEYS.group, consumer, {KEYS.stream: ">"}, count=1)
    if ack:
        await redis.xack(KEYS.stream, KEYS.group, taken[0][1][0][0])


async def test_only_idle_consumers_of_vanished_pods_are_removed(redis_client: Redis) -> None:
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)
    for i in range(3):
        await redis_client.xadd(KEYS.stream, {"type": "t", "payload": "{}", "id": str(i)})
    await read_one(redis_client, "pod-live", ack=True)
    await read_one(redis_client, "pod-gone", ack=True)
    await read_one(redis_client, "pod-crashed", ack=False)

    result = await reap_dead_consumers(redis_client, KEYS, live_pods={"pod-live"})

    assert result.deleted == ("pod-gone",)
    assert result.kept_pending == ("pod-crashed",)
    names = {c["name"] for c in await redis_client.xinfo_consumers(KEYS.stream, KEYS.group)}
    assert names == {"pod-live", "pod-crashed"}
    assert (await redis_client.xpending(KEYS.stream, KEYS.group))["pending"] == 1


async def test_recently_active_consumers_are_spared(redis_client: Redis) -> None:
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)
    await redis_client.xadd(KEYS.stream, {"type": "t", "payload": "{}"})
    await read_one(redis_client, "pod-starting", ack=True)
    result = await reap_dead_consumers(redis_client, KEYS, live_pods=(), min_idle_ms=60_000)
    assert result.deleted == ()


async def test_a_missing_stream_or_group_is_nothing_to_reap(redis_client: Redis) -> None:
    assert (
        await reap_dead_consumers(redis_client, KEYS, live_pods=())
        == type(await reap_dead_consumers(redis_client, KEYS, live_pods=()))()
    )
