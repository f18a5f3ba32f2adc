"""Waiting for a job's outcome (`AsyncClient.wait`, `Client.wait`) against a real Redis,
with an in-process worker settling the jobs."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.client import AsyncClient, Client, JobInfo
from jobqueue.core.keys import QueueKeys
from jobqueue.core.settings import QueueSettings
from jobqueue.core.waiting import wait_settled
from jobqueue.worker.runner import Worker
from jobqueue.worker.settings import WorkerSettings
from jobqueue.worker.testing import app as testing_app

KEYS = QueueKeys()
JOIN_S = 60.0
"""A generous bound on every join: the test never asserts speed."""


async def burst(redis_url: str) -> None:
    settings = WorkerSettings(
        queue=QueueSettings(redis_url=redis_url), consumer="wait-test", http_port=0,
        block_ms=100, burst=True,
    )  # fmt: skip
    assert await asyncio.wait_for(Worker(testing_app, settings).run(handle_signals=False), 60) == 0


async def test_a_waiter_returns_when_the_worker_settles_the_job_with_its_result(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    client = AsyncClient(redis_client)
    job = await client.enqueue("echo", {"value": {"ok": True}, "ms": 50})
    # given a waiter blocked on the job
    waiter = asyncio.create_task(client.wait(job.job_id, timeout=JOIN_S))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    # when a worker runs it
    await burst(redis_url)
    # then the waiter returns the settled record, result included
    info = await asyncio.wait_for(waiter, JOIN_S)
    assert info is not None
    assert (info.state, info.finished, info.result) == ("succeeded", True, {"ok": True})
    # and the announcement was made for it, its interest removed
    [(_, fields)] = await redis_client.xrange(KEYS.settled)
    assert fields == {"key": KEYS.status(job.job_id), "state": "succeeded"}
    assert await redis_client.zscore(KEYS.waiting, KEYS.status(job.job_id)) is None


async def test_jobs_no_one_waits_for_are_not_announced(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    client = AsyncClient(redis_client)
    await client.enqueue("echo", {"value": 1})
    await client.enqueue("record", {})  # Fatal: dead-lettered
    await burst(redis_url)
    assert await redis_client.exists(KEYS.settled, KEYS.waiting) == 0


async def test_a_settled_job_is_returned_at_once_and_an_unknown_one_is_none(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    client = AsyncClient(redis_client)
    job = await client.enqueue("echo", {"value": 7})
    await burst(redis_url)
    info = await asyncio.wait_for(client.wait(job.job_id, timeout=JOIN_S), JOIN_S / 2)
    assert info is not None
    assert (info.state, info.result) == ("succeeded", 7)
    assert await client.wait("01UNKNOWNJOB", timeout=JOIN_S) is None


async def test_a_wait_that_times_out_returns_the_current_record(
    redis_client: AsyncRedis,
) -> None:
    client = AsyncClient(redis_client)
    job = await client.enqueue("noop", {})
    info = await client.wait(job.job_id, timeout=0.3)
    assert info is not None
    assert (info.state, info.finished) == ("queued", False)


async def test_a_job_that_settles_between_the_status_read_and_the_block_wakes_the_waiter(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given a waiter whose first status read still shows the job queued, and the job
    # settling right after that read, before the waiter blocks
    client = AsyncClient(redis_client)
    job = await client.enqueue("echo", {"value": "late"})
    reads: list[JobInfo | None] = []

    async def read() -> JobInfo | None:
        info = await client.get(job.job_id)
        if not reads:
            await burst(redis_url)  # settles it now, after this (stale) read
        reads.append(info)
        return info

    # when it waits
    info = await asyncio.wait_for(
        wait_settled(redis_client, KEYS, job.job_id, JOIN_S, read), JOIN_S
    )
    # then it sees the outcome, announced after the position it noted at registration
    assert reads[0] is not None
    assert reads[0].state == "queued"
    assert info is not None
    assert (info.state, info.result) == ("succeeded", "late")
    [(_, fields)] = await redis_client.xrange(KEYS.settled)
    assert fields["key"] == KEYS.status(job.job_id)


async def test_cancel_and_dead_letters_wake_their_waiters(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    client = AsyncClient(redis_client)
    queued = await client.enqueue("noop", {})
    failing = await client.enqueue("record", {})  # no 'into': Fatal, dead-lettered
    cancelled = asyncio.create_task(client.wait(queued.job_id, timeout=JOIN_S))
    dead = asyncio.create_task(client.wait(failing.job_id, timeout=JOIN_S))
    await asyncio.sleep(0.2)

    assert (await client.cancel(queued.job_id)).answer == "cancelled"
    await burst(redis_url)

    info = await asyncio.wait_for(cancelled, JOIN_S)
    assert info is not None
    assert info.state == "cancelled"
    info = await asyncio.wait_for(dead, JOIN_S)
    assert info is not None
    assert info.state == "dead"
    states = sorted(f["state"] for _, f in await redis_client.xrange(KEYS.settled))
    assert states == ["cancelled", "dead"]


async def test_the_sync_client_waits_too(redis_client: AsyncRedis, redis_url: str) -> None:
    job = await AsyncClient(redis_client).enqueue("echo", {"value": [1, 2]})

    def wait() -> JobInfo | None:  # the sync client runs its own loop: in a thread
        with Client.from_url(redis_url) as client:
            return client.wait(job.job_id, JOIN_S)

    waiter = asyncio.create_task(asyncio.to_thread(wait))
    await asyncio.sleep(0.2)
    await burst(redis_url)
    info = await asyncio.wait_for(waiter, JOIN_S)
    assert info is not None
    assert (info.state, info.result) == ("succeeded", [1, 2])


@pytest.mark.parametrize("which", ["waiting", "settled"])
async def test_a_foreign_waiting_or_settled_key_slows_waiters_but_fails_no_outcome(
    redis_client: AsyncRedis, redis_url: str, which: str
) -> None:
    # given the waiting set or the settled stream held by another application as a string
    # (cancel and dead letters refused to run on it: a failing job stayed pending forever)
    key = getattr(KEYS, which)
    await redis_client.set(key, "another application's value")
    client = AsyncClient(redis_client)
    queued = await client.enqueue("noop", {})
    failing = await client.enqueue("record", {})  # no 'into': Fatal, dead-lettered
    done = await client.enqueue("noop", {})
    cancelled = asyncio.create_task(client.wait(queued.job_id, timeout=JOIN_S))
    dead = asyncio.create_task(client.wait(failing.job_id, timeout=JOIN_S))
    succeeded = asyncio.create_task(client.wait(done.job_id, timeout=JOIN_S))
    # when one job is cancelled and a worker runs the others,
    assert (await client.cancel(queued.job_id)).answer == "cancelled"
    await burst(redis_url)
    # then every outcome is recorded and every waiter returns it (reading the status)
    results = [await asyncio.wait_for(t, JOIN_S) for t in (cancelled, dead, succeeded)]
    assert [info.state if info else None for info in results] == [
        "cancelled",
        "dead",
        "succeeded",
    ]
    # and the other application's key is as it was
    assert await redis_client.get(key) == "another application's value"
