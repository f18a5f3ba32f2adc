"""`jobqueue migrate-keys`: data under the pre-0.2 names moves to the hash-tagged keys,
nothing lost or duplicated, and a second run moves nothing."""

from __future__ import annotations

import orjson
import redis
from click.testing import CliRunner
from redis.asyncio import Redis as AsyncRedis

from jobqueue.cli.main import cli
from jobqueue.core.client import AsyncClient
from jobqueue.core.keys import QueueKeys
from jobqueue.core.migrate import Migrated, migrate_keys
from jobqueue.core.settings import QueueSettings

KEYS = QueueKeys()
OLD = KEYS.legacy


async def write_old_layout(redis_client: AsyncRedis) -> None:
    """What a 0.1 queue ``jobs:work`` (and a neighbour ``other``) left in Redis."""
    fields = {"id": "J-late", "type": "noop", "payload": "{}", "attempts": "1"}
    await redis_client.zadd(OLD.delayed, {"J-late": 4102444800000, "J-due": 1})
    await redis_client.hset(OLD.delayed_jobs, "J-late", orjson.dumps(fields).decode())
    due = {**fields, "id": "J-due"}
    await redis_client.hset(OLD.delayed_jobs, "J-due", orjson.dumps(due).decode())
    await redis_client.hset(f"{OLD.status_prefix}J-late", mapping={"state": "retrying"})
    await redis_client.expire(f"{OLD.status_prefix}J-late", 5000)
    await redis_client.hset(f"{OLD.status_prefix}J-done", mapping={"state": "succeeded"})
    await redis_client.set(f"{OLD.idempotency_prefix}order-1", "J-done", ex=600)
    for n, source in enumerate(["jobs:work", "other", "jobs:work"]):
        await redis_client.xadd(
            "jobs:dead",
            {"original_id": f"D{n}", "source_stream": source, "reason": "attempts: x"},
            id=f"1000-{n + 1}",
        )


async def test_the_old_layout_moves_to_the_new_keys(redis_client: AsyncRedis) -> None:
    await write_old_layout(redis_client)

    moved = await migrate_keys(redis_client, KEYS)

    assert moved == Migrated(delayed_jobs=2, status_records=2, idempotency_keys=1, dead_letters=2)
    assert await redis_client.zrange(KEYS.delayed, 0, -1, withscores=True) == [
        ("J-due", 1.0),
        ("J-late", 4102444800000.0),
    ]
    late = orjson.loads(await redis_client.hget(KEYS.delayed_jobs, "J-late"))
    assert late["id"] == "J-late"
    assert await redis_client.hget(KEYS.status("J-late"), "state") == "retrying"
    assert 4000 < await redis_client.ttl(KEYS.status("J-late")) <= 5000
    assert await redis_client.get(KEYS.idempotency("order-1")) == "J-done"
    assert 0 < await redis_client.ttl(KEYS.idempotency("order-1")) <= 600
    dead = await redis_client.xrange(KEYS.dead)
    assert [(i, f["original_id"]) for i, f in dead] == [("1000-1", "D0"), ("1000-3", "D2")]
    # The neighbour's dead letter stays where its own (old) workers and tools look.
    assert [f["source_stream"] for _, f in await redis_client.xrange("jobs:dead")] == ["other"]
    left = [OLD.delayed, OLD.delayed_jobs, f"{OLD.status_prefix}J-late"]
    assert await redis_client.exists(*left) == 0

    assert await migrate_keys(redis_client, KEYS) == Migrated()


async def test_the_client_sees_migrated_jobs(redis_client: AsyncRedis) -> None:
    await write_old_layout(redis_client)
    await migrate_keys(redis_client, KEYS)
    client = AsyncClient(redis_client, QueueSettings())

    info = await client.get("J-late")
    assert info is not None
    assert info.state == "retrying"
    page = await client.dead_letters()
    replayed = await client.replay(page.items[0].entry_id)
    assert replayed is not None
    assert replayed.job_id == "D0"


async def test_newer_data_under_the_new_names_wins(redis_client: AsyncRedis) -> None:
    await write_old_layout(redis_client)
    await redis_client.hset(KEYS.status("J-late"), mapping={"state": "succeeded"})
    await redis_client.xadd(KEYS.dead, {"original_id": "NEW", "source_stream": "jobs:work"})

    moved = await migrate_keys(redis_client, KEYS)

    assert moved.status_records == 1  # J-done; J-late had a newer record already
    assert await redis_client.hget(KEYS.status("J-late"), "state") == "succeeded"
    assert not await redis_client.exists(f"{OLD.status_prefix}J-late")
    # Old dead letters older than the new stream's last entry get new ids, in order.
    ids = [f["original_id"] for _, f in await redis_client.xrange(KEYS.dead)]
    assert ids == ["NEW", "D0", "D2"]


def test_the_command_reports_what_it_moved(redis_url: str, sync_redis: redis.Redis) -> None:
    sync_redis.zadd(OLD.delayed, {"J1": 1})
    sync_redis.hset(OLD.delayed_jobs, "J1", '{"id": "J1", "type": "noop", "payload": "{}"}')

    done = CliRunner().invoke(cli, ["migrate-keys", "--json"], env={"REDIS_URL": redis_url})

    assert done.exit_code == 0, done.output
    assert orjson.loads(done.stdout)["delayedJobs"] == 1
    assert sync_redis.zrange(KEYS.delayed, 0, -1) == ["J1"]
