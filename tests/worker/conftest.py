"""Helpers of the worker tests: enqueue SPEC §2 entries, run a worker in-process, poll."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.records import read_record
from jobqueue.core.settings import QueueSettings
from jobqueue.core.wire import new_job_id, utc_now_iso
from jobqueue.worker.app import App
from jobqueue.worker.runner import Worker
from jobqueue.worker.settings import WorkerSettings

KEYS = QueueKeys()
STREAM, GROUP, DEAD = KEYS.stream, KEYS.group, KEYS.dead


async def enqueue(
    client: AsyncRedis, job_type: str, payload: dict[str, Any] | None = None, **extra: str
) -> str:
    """XADD one job in the SPEC §2 format; returns its job id."""
    job_id = new_job_id()
    fields = {
        "id": job_id,
        "type": job_type,
        "payload": orjson.dumps(payload or {}).decode(),
        "priority": "5",
        "enqueued_at": utc_now_iso(),
        "attempts": "0",
        **extra,
    }
    await client.xadd(STREAM, fields)  # type: ignore[arg-type]
    return job_id


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def settings_for(redis_url: str, **overrides: Any) -> WorkerSettings:
    """Test settings: no HTTP server, quick reads, a fixed consumer name."""
    values: dict[str, Any] = {
        "queue": QueueSettings(redis_url=redis_url),
        "consumer": "test-worker",
        "http_port": 0,
        "block_ms": 100,
        "promote_interval_s": 0.05,
        "grace_period_s": 5.0,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.2,
    }
    values.update(overrides)
    return WorkerSettings(**values)


@asynccontextmanager
async def running(app: App, settings: WorkerSettings) -> AsyncIterator[Worker]:
    """A worker running as a task of this test; stopped (gracefully) on exit."""
    worker = Worker(app, settings)
    task = asyncio.create_task(worker.run(handle_signals=False))
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


async def run_burst(app: App, settings: WorkerSettings, timeout_s: float = 60.0) -> int:
    """Run a burst worker until the queue is empty; returns its exit code."""
    worker = Worker(app, dataclasses.replace(settings, burst=True))
    return await asyncio.wait_for(worker.run(handle_signals=False), timeout_s)


async def record_of(client: AsyncRedis, job_id: str) -> dict[str, str]:
    """A job's status record wherever it lives (`jobqueue.core.records`); {} if none."""
    return await read_record(client, KEYS, job_id) or {}


async def record_ttl(client: AsyncRedis, job_id: str) -> int:
    """Seconds left of the key holding a job's record (its own, or its success hash)."""
    done = KEYS.done(job_id)
    if done is not None and await client.hexists(done, job_id):
        return int(await client.ttl(done))
    return int(await client.ttl(KEYS.status(job_id)))


async def dead_letters(client: AsyncRedis) -> list[dict[str, str]]:
    return [fields for _, fields in await client.xrange(DEAD)]


async def group_pending(client: AsyncRedis) -> int:
    return int((await client.xpending(STREAM, GROUP))["pending"])
