"""Replicated enqueue (``enqueue_min_replicas``): accepted only once replicas hold the
jobs, else `EnqueueUnconfirmed` naming them; never a success that was not confirmed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from support.redis_server import RedisServer, free_port

from jobqueue.core.client import JOBS_PER_SCRIPT_CALL, AsyncClient, NewJob
from jobqueue.core.errors import ConfigError, EnqueueUnconfirmed
from jobqueue.core.keys import QueueKeys
from jobqueue.core.settings import QueueSettings

KEYS = QueueKeys()


def replicated(min_replicas: int, timeout_ms: int = 5000) -> QueueSettings:
    return QueueSettings(enqueue_min_replicas=min_replicas, enqueue_replicas_timeout_ms=timeout_ms)


@pytest.fixture(scope="module")
def replica(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[redis.Redis]:
    """A replica of the session's Redis, in sync (a test's flush reaches it too)."""
    with redis.Redis(port=redis_server.port) as primary:
        primary.config_set("repl-diskless-sync-delay", 0)  # sync at once, not after 5 s
    server = RedisServer(
        tmp_path_factory.mktemp("replica"),
        extra_args=("--replicaof", "127.0.0.1", str(redis_server.port)),
    )
    server.start()
    client = redis.Redis(port=server.port, decode_responses=True)
    try:
        deadline = time.monotonic() + 30
        while client.info("replication")["master_link_status"] != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.02)
        yield client
    finally:
        client.close()
        server.stop()


async def test_with_no_replica_to_acknowledge_the_enqueue_is_unconfirmed_with_its_job_ids(
    redis_client: AsyncRedis,
) -> None:
    client = AsyncClient(redis_client, replicated(1, timeout_ms=50))
    with pytest.raises(EnqueueUnconfirmed, match="0 of 1 replicas") as caught:
        await client.enqueue_many([NewJob("email", {"n": 1}), NewJob("email", {"n": 2})])
    # The primary has them: "unknown" means it may survive or not, never "not written".
    queued = [fields["id"] for _, fields in await redis_client.xrange(KEYS.stream)]
    assert caught.value.job_ids == queued
    assert caught.value.only(1).job_ids == queued[1:]


async def test_with_a_replica_the_enqueue_returns_once_the_replica_holds_the_job(
    redis_client: AsyncRedis, replica: redis.Redis
) -> None:
    client = AsyncClient(redis_client, replicated(1))
    job = await client.enqueue("email", {"to": "a@b.c"})
    # No wait here: WAIT returned, so the replica has it already.
    [(entry_id, fields)] = replica.xrange(KEYS.stream)
    assert (entry_id, fields["id"]) == (job.entry_id, job.job_id)
    assert replica.hget(KEYS.queued, job.job_id) == entry_id  # listed as queued too


async def test_a_batch_of_several_script_calls_is_one_transaction_then_one_wait(
    redis_client: AsyncRedis, replica: redis.Redis
) -> None:
    client = AsyncClient(redis_client, replicated(1))
    jobs = [NewJob("email", {"n": n}) for n in range(JOBS_PER_SCRIPT_CALL + 3)]
    results = await client.enqueue_many(jobs)
    assert len(results) == len(jobs)
    assert [r.job_id for r in results] == [f["id"] for _, f in replica.xrange(KEYS.stream)]


async def test_an_idempotent_repeat_is_answered_as_before(
    redis_client: AsyncRedis, replica: redis.Redis
) -> None:
    client = AsyncClient(redis_client, replicated(1))
    first = await client.enqueue("email", {}, idempotency_key="k1")
    again = await client.enqueue("email", {}, idempotency_key="k1")
    assert (again.job_id, again.duplicate) == (first.job_id, True)
    assert replica.xlen(KEYS.stream) == 1


async def test_a_wait_cut_short_by_a_demotion_is_unconfirmed(tmp_path: Path) -> None:
    # Given an enqueue blocked in WAIT on a primary of its own (no replica to answer)
    primary = RedisServer(tmp_path / "primary")
    primary.start()
    try:
        async with AsyncRedis(port=primary.port, decode_responses=True) as connection:
            client = AsyncClient(connection, replicated(1, timeout_ms=60_000))
            enqueue = asyncio.create_task(client.enqueue("email", {}))
            with redis.Redis(port=primary.port, decode_responses=True) as admin:
                deadline = time.monotonic() + 10
                while not any(c["cmd"] == "wait" for c in admin.client_list()):
                    assert time.monotonic() < deadline, "the enqueue never reached WAIT"
                    await asyncio.sleep(0.01)
                # When the primary is made a replica (a failover): Redis answers UNBLOCKED
                admin.replicaof("127.0.0.1", free_port())
                # Then the enqueue is unconfirmed, naming the job that was written
                with pytest.raises(EnqueueUnconfirmed, match="UNBLOCKED") as caught:
                    await asyncio.wait_for(enqueue, 10)
                [(_, fields)] = admin.xrange(KEYS.stream)
                assert caught.value.job_ids == [fields["id"]]
    finally:
        primary.stop()


def test_the_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ConfigError, match="MIN_REPLICAS"):
        replicated(-1)
    with pytest.raises(ConfigError, match="TIMEOUT_MS"):
        replicated(1, timeout_ms=0)  # WAIT 0 would wait forever
    env = {"JOBQUEUE_ENQUEUE_MIN_REPLICAS": "2", "JOBQUEUE_ENQUEUE_REPLICAS_TIMEOUT_MS": "250"}
    settings = QueueSettings.from_env(env)
    assert (settings.enqueue_min_replicas, settings.enqueue_replicas_timeout_ms) == (2, 250)
