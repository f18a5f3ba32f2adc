"""A worker of a partitioned queue on one Redis: one engine per partition it consumes,
one set of metrics, one stop, and every partition's own retries and dead letters."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis as AsyncRedis
from support.redis_server import free_port

from jobqueue.core.client import AsyncClient, NewJob
from jobqueue.core.errors import ConfigError
from jobqueue.core.lanes import parse_lanes
from jobqueue.core.limits import TypeLimit
from jobqueue.core.settings import QueueSettings
from jobqueue.worker.partitioned import PartitionedWorker, engine_settings, worker_for
from jobqueue.worker.runner import Worker
from jobqueue.worker.settings import WorkerSettings
from jobqueue.worker.testing import app as testing_app

from .conftest import eventually, settings_for

DONE = "partitioned:done"


def _settings(redis_url: str, **overrides: object) -> WorkerSettings:
    queue = QueueSettings(redis_url=redis_url, partitions=3)
    return settings_for(redis_url, queue=queue, concurrency=8, **overrides)


def test_engines_share_the_concurrency_and_each_runs_one_partition() -> None:
    settings = _settings("redis://127.0.0.1:1/0", partitions=(0, 2), http_port=8081)
    engines = engine_settings(dataclasses.replace(settings, concurrency=5))

    assert [e.concurrency for e in engines] == [3, 2]
    partitions = settings.queue.partition_keys
    assert [e.queue.stream for e in engines] == [partitions[0].stream, partitions[2].stream]
    assert {e.http_port for e in engines} == {0}  # the process serves HTTP once
    assert isinstance(worker_for(testing_app, settings), PartitionedWorker)
    assert isinstance(worker_for(testing_app, settings_for("redis://127.0.0.1:1/0")), Worker)
    with pytest.raises(ConfigError, match="not among the queue's 3"):
        dataclasses.replace(settings, partitions=(3,))


def test_each_partition_enforces_its_share_of_the_queue_limits() -> None:
    limits = (TypeLimit("email", rate_jobs=50, rate_period_s=1.0), TypeLimit("pdf", concurrency=4))
    settings = dataclasses.replace(_settings("redis://127.0.0.1:1/0"), limits=limits)

    shares = [e.limits for e in engine_settings(settings)]

    # 50/1s for the queue: 50/3s in each of 3 partitions, 50 a second in all
    assert {share[0].rate_per_s for share in shares} == {50 / 3}
    assert [share[1].concurrency for share in shares] == [2, 1, 1]  # 4 running in all


async def test_a_burst_worker_runs_the_jobs_of_every_partition_once(
    redis_url: str, redis_client: AsyncRedis
) -> None:
    settings = _settings(redis_url, burst=True)
    client = AsyncClient(redis_client, settings.queue)
    jobs = [NewJob("record", {"into": DONE}) for _ in range(45)]
    jobs += [NewJob("fail", {"times": 1, "into": DONE}) for _ in range(3)]  # a retry each
    jobs.append(NewJob("fail", {}, extra={"max_attempts": "1"}))  # a dead letter
    ids = [r.job_id for r in await client.enqueue_many(jobs)]
    assert all(s.length for s in await client.partition_stats())  # every partition has work
    registry = CollectorRegistry()

    worker = PartitionedWorker(testing_app, settings, registry=registry)
    assert await asyncio.wait_for(worker.run(handle_signals=False), 60) == 0

    runs = await redis_client.hgetall(DONE)
    assert set(runs) == set(ids[:-1])
    assert set(runs.values()) == {"1"}
    stats = await client.stats()
    assert (stats.lag, stats.pending, stats.delayed, stats.dead_letters) == (0, 0, 0, 1)
    succeeded = registry.get_sample_value(
        "jobqueue_jobs_total", {"queue": "jobs:work", "type": "record", "outcome": "succeeded"}
    )
    assert succeeded == 45  # every engine counted into the one series


async def test_every_partition_engine_reads_its_own_priority_lanes(
    redis_url: str, redis_client: AsyncRedis
) -> None:
    queue = QueueSettings(redis_url=redis_url, partitions=2, lanes=parse_lanes("high:8-10,low:1-7"))
    settings = settings_for(redis_url, queue=queue, concurrency=4, burst=True)
    client = AsyncClient(redis_client, queue)
    jobs = [NewJob("record", {"into": DONE}, priority=9 if n % 2 else 3) for n in range(20)]
    ids = [r.job_id for r in await client.enqueue_many(jobs)]
    registry = CollectorRegistry()

    code = await asyncio.wait_for(
        worker_for(testing_app, settings, registry=registry).run(handle_signals=False), 60
    )

    assert code == 0
    assert set(await redis_client.hgetall(DONE)) == set(ids)
    delivered = [
        registry.get_sample_value(
            "jobqueue_lane_deliveries_total", {"queue": "jobs:work", "lane": lane}
        )
        or 0
        for lane in ("high", "low")
    ]
    assert sum(delivered) == 20  # both engines counted into the one series per lane


async def test_one_side_server_answers_for_every_partition(
    redis_url: str, redis_client: AsyncRedis
) -> None:
    port = free_port()
    settings = _settings(redis_url, http_port=port, http_host="127.0.0.1")
    client = AsyncClient(redis_client, settings.queue)
    ids = [r.job_id for r in await client.enqueue_many([NewJob("record", {"into": DONE})] * 12)]
    worker = PartitionedWorker(testing_app, settings)
    run = asyncio.create_task(worker.run(handle_signals=False))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await eventually(lambda: _all_done(redis_client, ids), what="every job")
            await eventually(lambda: _ready(http, f"{base}/readyz"), what="the side server")
            async with http.get(f"{base}/metrics") as response:
                text = await response.text()
    finally:
        worker.stop()
        assert await asyncio.wait_for(run, 30) == 0

    assert 'jobqueue_jobs_total{outcome="succeeded",queue="jobs:work",type="record"} 12.0' in text
    assert 'jobqueue_jobs_in_flight{queue="jobs:work"} 0.0' in text
    assert text.count("# TYPE jobqueue_jobs_total counter") == 1


async def test_an_engine_that_fails_stops_the_others_with_its_exit_code(redis_url: str) -> None:
    worker = PartitionedWorker(testing_app, _settings(redis_url))

    async def beyond_repair(**_: object) -> int:
        await asyncio.sleep(0.3)  # the others are reading by now
        return 1

    worker.engines[1].run = beyond_repair  # type: ignore[method-assign]

    assert await asyncio.wait_for(worker.run(handle_signals=False), 30) == 1
    assert all(e.stopping.is_set() for e in worker.engines)


async def _all_done(redis: AsyncRedis, ids: list[str]) -> bool:
    return set(await redis.hgetall(DONE)) == set(ids)


async def _ready(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url) as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:  # not listening yet
        return False


async def test_a_worker_of_some_partitions_leaves_the_others_alone(
    redis_url: str, redis_client: AsyncRedis
) -> None:
    settings = _settings(redis_url, burst=True, partitions=(1,))
    client = AsyncClient(redis_client, settings.queue)
    await client.enqueue_many([NewJob("record", {"into": DONE}) for _ in range(30)])
    before = [s.length for s in await client.partition_stats()]

    code = await asyncio.wait_for(worker_for(testing_app, settings).run(handle_signals=False), 60)

    assert code == 0
    after = await client.partition_stats()
    assert await redis_client.hlen(DONE) == before[1]
    assert [s.lag for s in after] == [before[0], 0, before[2]]
