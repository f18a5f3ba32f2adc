"""Demo traffic: jobs the demo app (and the producer's demo schemas) accept, in bursts."""

from __future__ import annotations

import asyncio
import random

import orjson
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.client import AsyncClient
from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import decode
from jobqueue.local.demo import DemoSettings, demo_job, run_bursts
from jobqueue.producer.job_types import JobTypes


def test_every_demo_job_passes_the_producers_demo_schemas() -> None:
    rng = random.Random(7)
    job_types = JobTypes.demo()

    jobs = [demo_job(rng, n) for n in range(200)]

    assert {job.type for job in jobs} == {"email", "report", "webhook", "thumbnail"}
    for job in jobs:
        assert job_types.issues(job.type, dict(job.payload)) == [], job


async def test_a_burst_lands_in_the_stream_in_parts_and_is_announced(
    redis_client: AsyncRedis,
) -> None:
    events: list[str] = []
    shape = DemoSettings(first_burst_after_s=0, period_s=3600, spread_s=2, burst_sizes=(6,))
    client = AsyncClient(redis_client)
    task = asyncio.create_task(run_bursts(client, events.append, shape, random.Random(1)))
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while await redis_client.xlen(QueueKeys().stream) < 6:
            assert asyncio.get_running_loop().time() < deadline, "burst did not land"
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    entries = await redis_client.xrange(QueueKeys().stream)
    jobs = [decode(entry_id, fields) for entry_id, fields in entries]
    assert len(jobs) == 6
    assert all(isinstance(orjson.loads(f["payload"]), dict) for _, f in entries)
    assert events == ["demo: burst 1, 6 jobs over 2s"]
