"""Crash accounting: a job is dead-lettered as poison only when workers died running it.

Redis's delivery counter also grows for reconnects, re-reads of a consumer's own
pending list, read-ahead that never started and graceful stops; none of those may
count (see ``jobqueue.worker.crashes``). Real worker processes where a death or a
signal is the point, in-process workers where the setup is built by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from support.records import sync_state
from support.worker_process import WorkerProcess, wait_for, xadd_job
from worker.conftest import (
    DEAD,
    GROUP,
    KEYS,
    STREAM,
    dead_letters,
    enqueue,
    eventually,
    group_pending,
    record_of,
    running,
    settings_for,
)

from jobqueue.core.keys import QueueKeys, partition_streams
from jobqueue.worker.crashes import CrashLedger
from jobqueue.worker.testing import app as testing_app

QUICK = ("--visibility-timeout-s", "2", "--grace-period-s", "10")
CRASHES = KEYS.crashes
Spawn = Callable[..., WorkerProcess]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start worker processes that are SIGKILLed at teardown if still alive."""
    started: list[WorkerProcess] = []

    def start(
        redis_url: str, consumer: str, *args: str, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        worker = WorkerProcess(redis_url, consumer, *args, log_dir=tmp_path, env=env).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def put(client: redis.Redis, job_type: str, payload: dict[str, object]) -> str:
    return xadd_job(client, STREAM, job_type, payload)


def states(client: redis.Redis, ids: list[str]) -> list[str | None]:
    return [sync_state(client, i, KEYS) for i in ids]


def times_delivered(client: redis.Redis) -> list[int]:
    return [
        int(row["times_delivered"]) for row in client.xpending_range(STREAM, GROUP, "-", "+", 100)
    ]


def held_by(client: redis.Redis) -> list[str]:
    return [c["name"] for c in client.xpending(STREAM, GROUP)["consumers"]]


def hot_connection_up(client: redis.Redis, consumer: str) -> bool:
    return any(c.get("name") == f"jobqueue-worker:{consumer}" for c in client.client_list())


def test_reconnects_then_a_kill_do_not_dead_letter_the_jobs_that_were_running(
    sync_redis: redis.Redis, redis_url: str, spawn: Spawn
) -> None:
    # given a worker running four jobs that wait for a go
    ids = [put(sync_redis, "hold", {"until": "go", "into": "done"}) for _ in range(4)]
    args = (*QUICK, "--max-deliveries", "2", "--concurrency", "8")
    a = spawn(redis_url, "pod-a", *args)
    wait_for(lambda: states(sync_redis, ids) == ["running"] * 4, "the jobs to run")
    # when its connections are killed four times (each reconnect re-reads its own
    # pending list: Redis counts a delivery each time) ...
    for kill in range(1, 5):
        sync_redis.client_kill_filter(_type="normal", skipme=True)
        wait_for(
            lambda kill=kill: (
                min(times_delivered(sync_redis)) > kill and hot_connection_up(sync_redis, "pod-a")
            ),
            "the worker to reconnect and re-read its pending list",
        )
    # ... then it is SIGKILLed and its pod restarted under the same name
    a.kill()
    b = spawn(redis_url, "pod-a", *args)
    wait_for(lambda: states(sync_redis, ids) == ["running"] * 4, "the jobs to run again")
    sync_redis.set("go", 1)
    # then every job succeeds: one death was blamed on each, not six deliveries
    wait_for(lambda: states(sync_redis, ids) == ["succeeded"] * 4, "the jobs to succeed")
    assert sync_redis.xlen(DEAD) == 0, b.output()
    assert sync_redis.hgetall("done") == dict.fromkeys(ids, "1")


def test_a_gracefully_stopped_workers_jobs_are_not_blamed(
    sync_redis: redis.Redis, redis_url: str, spawn: Spawn
) -> None:
    # given a worker with a job that outlasts its grace period
    job_id = put(sync_redis, "hold", {"until": "go", "into": "done"})
    a = spawn(redis_url, "pod-a", "--visibility-timeout-s", "1", "--grace-period-s", "0.2")
    wait_for(lambda: states(sync_redis, [job_id]) == ["running"], "the job to run")
    # when it is stopped with SIGTERM (the job is left pending) and another worker that
    # dead-letters a job at its first blamed death takes the job over
    assert a.stop() == 0, a.output()
    assert sync_redis.xpending(STREAM, GROUP)["pending"] == 1
    b = spawn(redis_url, "pod-b", "--visibility-timeout-s", "1", "--max-deliveries", "1")
    wait_for(lambda: held_by(sync_redis) != ["pod-a"], "B to take the job over")
    sync_redis.set("go", 1)
    # then it runs to success: a graceful stop is no crash
    wait_for(lambda: states(sync_redis, [job_id]) == ["succeeded"], "the job to succeed")
    assert sync_redis.xlen(DEAD) == 0, b.output()


def test_innocent_jobs_that_shared_a_poison_jobs_crash_survive_it(
    sync_redis: redis.Redis, redis_url: str, spawn: Spawn
) -> None:
    # given three innocent jobs read in one batch with a job that kills its worker
    innocent = [put(sync_redis, "sleep", {"ms": 300, "into": "done"}) for _ in range(3)]
    poison = put(sync_redis, "crash", {})
    # when the pod keeps being restarted under the same name until its queue is empty
    args = (*QUICK, "--max-deliveries", "2", "--concurrency", "4", "--burst")
    exits = []
    for _ in range(6):
        worker = spawn(redis_url, "pod-c", *args)
        exits.append(worker.wait(60))
        if exits[-1] == 0:
            break
    # then the innocent jobs, blamed once for the first crash, ran one at a time and
    # succeeded; the poison job, blamed for both crashes, is the only dead letter
    assert exits[-1] == 0, worker.output()
    assert exits.count(137) == 2, exits
    # (an innocent job may have run twice: its worker died before its acknowledgement)
    assert sorted(sync_redis.hgetall("done")) == sorted(innocent)
    [(_, dead)] = sync_redis.xrange(DEAD)
    assert dead["original_id"] == poison
    assert dead["reason"].startswith("deliveries: started 2 times by workers that died")


def test_suspects_of_different_partitions_never_run_together(
    sync_redis: redis.Redis, redis_url: str, spawn: Spawn
) -> None:
    # given a queue of two partitions: innocent jobs in partition 1 read with a job of
    # partition 0 that kills its worker (one process runs both partitions' engines)
    first, second = partition_streams(STREAM, 2)
    innocent = [xadd_job(sync_redis, second, "sleep", {"ms": 300, "into": "done"}) for _ in "abc"]
    poison = xadd_job(sync_redis, first, "crash", {})
    # when the pod keeps being restarted under the same name until its queue is empty
    args = (*QUICK, "--max-deliveries", "2", "--concurrency", "8", "--burst")
    exits = []
    for _ in range(6):
        worker = spawn(redis_url, "pod-p", *args, env={"JOBQUEUE_PARTITIONS": "2"})
        exits.append(worker.wait(60))
        if exits[-1] == 0:
            break
    # then a suspect of partition 1 never ran beside partition 0's poison job (one
    # suspect at a time in the process, not per engine: else each crash blamed both)
    assert exits[-1] == 0, worker.output()
    assert sorted(sync_redis.hgetall("done")) == sorted(innocent)
    assert sync_redis.xlen(QueueKeys(second).dead) == 0, sync_redis.xrange(QueueKeys(second).dead)
    [(_, dead)] = sync_redis.xrange(KEYS.dead)
    assert dead["original_id"] == poison
    assert dead["reason"].startswith("deliveries: started 2 times by workers that died")


async def test_rereads_of_a_consumers_own_pending_list_do_not_count(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given two entries delivered to consumer pod-a, never started, re-read ten times
    await redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    ids = [await enqueue(redis_client, "record", {"into": "done"}) for _ in range(2)]
    await redis_client.xreadgroup(GROUP, "pod-a", {STREAM: ">"}, count=2)
    for _ in range(10):
        await redis_client.xreadgroup(GROUP, "pod-a", {STREAM: "0"}, count=2)
    # when pod-a starts with max_deliveries=2
    settings = settings_for(redis_url, consumer="pod-a", max_deliveries=2)
    async with running(testing_app, settings):
        await eventually(lambda: _succeeded(redis_client, ids), what="both jobs to succeed")
    # then they ran, blamed for nothing
    assert await dead_letters(redis_client) == []
    assert await redis_client.hgetall(CRASHES) == {}


async def test_read_ahead_that_never_started_is_not_blamed_when_reclaimed(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given a worker that died holding four entries: it had started the first two, the
    # other two were read ahead; all re-delivered often
    await redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    ids = [await enqueue(redis_client, "record", {"into": "done"}) for _ in range(4)]
    rows = await redis_client.xreadgroup(GROUP, "ghost", {STREAM: ">"}, count=4)
    entries = [entry_id for entry_id, _ in rows[0][1]]
    ghost = CrashLedger(redis_client, KEYS, "ghost")
    await redis_client.execute_command(*ghost.start_command(entries[1]))
    for _ in range(5):
        await redis_client.xclaim(STREAM, GROUP, "ghost", 0, entries)
    await asyncio.sleep(0.3)  # idle past the visibility timeout
    # when a worker that dead-letters a job at its first blamed death reclaims them
    settings = settings_for(redis_url, visibility_timeout_s=0.2, max_deliveries=1)
    async with running(testing_app, settings):
        await eventually(lambda: _succeeded(redis_client, ids[2:]), what="the read-ahead to run")
        await eventually(lambda: _dead(redis_client, 2), what="the started ones to be dead")
    # then the two it had started are blamed for its death, the read-ahead is not
    assert sorted(d["original_id"] for d in await dead_letters(redis_client)) == ids[:2]
    assert await redis_client.hgetall("done") == dict.fromkeys(ids[2:], "1")
    assert await group_pending(redis_client) == 0


async def test_counts_of_entries_no_longer_pending_are_pruned(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given crash counts of a pending entry and of one acknowledged since
    await redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    for _ in range(2):
        await enqueue(redis_client, "record", {"into": "done"})
    rows = await redis_client.xreadgroup(GROUP, "ghost", {STREAM: ">"}, count=2)
    [kept, gone] = [entry_id for entry_id, _ in rows[0][1]]
    await redis_client.hset(CRASHES, mapping={kept: 1, gone: 2})
    await redis_client.xack(STREAM, GROUP, gone)
    # when a worker prunes
    ledger = CrashLedger(redis_client, KEYS, "pruner")
    assert await ledger.prune() == 1
    # then only the pending entry's count is left
    assert await redis_client.hgetall(CRASHES) == {kept: "1"}


async def _succeeded(client: AsyncRedis, ids: list[str]) -> bool:
    return all([(await record_of(client, i)).get("state") == "succeeded" for i in ids])


async def _dead(client: AsyncRedis, n: int) -> bool:
    return len(await dead_letters(client)) == n
