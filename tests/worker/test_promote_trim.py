"""Delayed promotion and safe trimming, straight against Redis."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from redis.asyncio import Redis as AsyncRedis
from worker.conftest import DEAD, GROUP, STREAM, record_of

from jobqueue.core.connection import async_redis
from jobqueue.core.keys import QueueKeys
from jobqueue.worker.promote import Promoter
from jobqueue.worker.trim import Trimmer

KEYS = QueueKeys()


async def _delay(client: AsyncRedis, job_id: str, due_ms: int, **extra: str) -> None:
    fields = {"id": job_id, "type": "record", "payload": '{"into":"done"}', "attempts": "1"}
    await client.zadd(KEYS.delayed, {job_id: due_ms})
    await client.hset(KEYS.delayed_jobs, job_id, orjson.dumps({**fields, **extra}).decode())


async def test_due_jobs_move_to_the_stream_with_their_fields_and_others_wait(
    redis_client: AsyncRedis,
) -> None:
    await _delay(redis_client, "due", 1_000, trace_id="t")
    await _delay(redis_client, "later", 5_000)
    moved = await Promoter(redis_client, KEYS, 60).promote_due(now_ms=2_000)
    assert moved == 1
    [(entry_id, fields)] = await redis_client.xrange(STREAM)
    assert fields["id"] == "due"
    assert fields["trace_id"] == "t"
    assert fields["attempts"] == "1"
    assert await redis_client.zrange(KEYS.delayed, 0, -1) == ["later"]
    assert await redis_client.hkeys(KEYS.delayed_jobs) == ["later"]
    record = await record_of(redis_client, "due")
    assert record["state"] == "queued"
    assert record["entry_id"] == entry_id


async def test_racing_promoters_move_each_job_exactly_once(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    for n in range(1200):
        await _delay(redis_client, f"job-{n}", 1_000 + n)
    clients = [async_redis(redis_url) for _ in range(4)]
    try:
        promoters = [Promoter(c, KEYS, 60) for c in clients]
        moved = await asyncio.gather(*(p.promote_due(now_ms=10_000) for p in promoters))
    finally:
        for c in clients:
            await c.aclose()
    assert sum(moved) == 1200
    ids = [fields["id"] for _, fields in await redis_client.xrange(STREAM)]
    assert sorted(ids) == sorted(f"job-{n}" for n in range(1200))
    assert await redis_client.zcard(KEYS.delayed) == 0


async def test_a_delayed_entry_that_is_not_json_goes_to_dead_letters(
    redis_client: AsyncRedis, caplog: pytest.LogCaptureFixture
) -> None:
    await redis_client.zadd(KEYS.delayed, {"broken": 1})
    await redis_client.hset(KEYS.delayed_jobs, "broken", "{not json")
    assert await Promoter(redis_client, KEYS, 60).promote_due(now_ms=2) == 1
    [(_, dead)] = await redis_client.xrange(DEAD)
    assert dead["original_id"] == "broken"
    assert dead["reason"].startswith("malformed")
    assert await redis_client.xlen(STREAM) == 0
    # and, like every dead letter, it is one ERROR line naming the job
    [line] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert (line.getMessage(), line.job_id) == (  # type: ignore[attr-defined]
        "job broken dead-lettered: malformed: delayed job is not JSON",
        "broken",
    )


async def test_trim_keeps_everything_a_group_has_not_finished(redis_client: AsyncRedis) -> None:
    # given 10 entries; group "workers" acked 1-3 and holds 4-5 pending; group "audit"
    # has read only 1-7 and acked all of those
    await redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    await redis_client.xgroup_create(STREAM, "audit", id="0")
    ids = [await redis_client.xadd(STREAM, {"n": str(n)}) for n in range(10)]
    await redis_client.xreadgroup(GROUP, "w", {STREAM: ">"}, count=5)
    await redis_client.xack(STREAM, GROUP, *ids[:3])
    await redis_client.xreadgroup("audit", "a", {STREAM: ">"}, count=7)
    await redis_client.xack(STREAM, "audit", *ids[:7])
    trimmer = Trimmer(redis_client, KEYS)
    # when trimmed: only below the oldest pending entry of "workers" (the lower floor)
    assert await trimmer.trim() == 3
    assert [i for i, _ in await redis_client.xrange(STREAM)] == ids[3:]
    # when "workers" acks everything it had, the floor becomes audit's last delivered
    await redis_client.xack(STREAM, GROUP, *ids[3:5])
    await redis_client.xreadgroup(GROUP, "w", {STREAM: ">"}, count=5)
    await redis_client.xack(STREAM, GROUP, *ids[5:])
    assert await trimmer.trim() == 3
    assert [i for i, _ in await redis_client.xrange(STREAM)] == ids[6:]


async def test_trim_without_groups_or_stream_removes_nothing(redis_client: AsyncRedis) -> None:
    trimmer = Trimmer(redis_client, KEYS)
    assert await trimmer.trim() == 0
    await redis_client.xadd(STREAM, {"n": "1"})
    assert await trimmer.trim() == 0
    assert await redis_client.xlen(STREAM) == 1
