"""End to end with real ``jobqueue worker`` processes: delayed jobs run no earlier than
asked, cancelled jobs never run (or stop when running), replayed dead letters run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from producer.http_api import Api
from redis.asyncio import Redis as AsyncRedis
from support.worker_process import WorkerProcess

pytestmark = pytest.mark.slow
DEADLINE_S = 60.0


async def until(condition: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def state_of(api: Api, job_id: str) -> str:
    _, body = await api.call("GET", f"/jobs/{job_id}")
    return str(body["state"])


def iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def burst(redis_url: str, tmp_path: Path, *args: str) -> None:
    """Run a worker until the queue is empty (``--burst``) and check it exited cleanly."""
    worker = WorkerProcess(redis_url, "burst", "--burst", *args, log_dir=tmp_path).start()
    code = await asyncio.to_thread(worker.wait, DEADLINE_S)
    assert code == 0, worker.output()


async def test_a_delayed_job_runs_no_earlier_than_asked(
    api: Api, redis_client: AsyncRedis, redis_url: str, tmp_path: Path
) -> None:
    job = {"type": "record", "payload": {"into": "done"}, "delay_seconds": 1.5}
    _, accepted = await api.call("POST", "/jobs", json=job)
    _, delayed = await api.call("GET", f"/jobs/{accepted['jobId']}")

    await burst(redis_url, tmp_path)

    _, finished = await api.call("GET", f"/jobs/{accepted['jobId']}")
    assert await redis_client.hget("done", accepted["jobId"]) == "1"
    assert finished["state"] == "succeeded"
    assert iso(finished["startedAt"]) >= iso(delayed["runAt"])
    assert (iso(delayed["runAt"]) - iso(delayed["enqueuedAt"])).total_seconds() >= 1.5


async def test_cancelled_queued_and_delayed_jobs_never_run(
    api: Api, redis_client: AsyncRedis, redis_url: str, tmp_path: Path
) -> None:
    record = {"type": "record", "payload": {"into": "done"}}
    _, queued = await api.call("POST", "/jobs", json=record)
    _, delayed = await api.call("POST", "/jobs", json={**record, "delay_seconds": 0.5})
    _, kept = await api.call("POST", "/jobs", json=record)
    for job in (queued, delayed):
        status, cancelled = await api.call("DELETE", f"/jobs/{job['jobId']}")
        assert (status, cancelled["result"]) == (200, "cancelled")

    await burst(redis_url, tmp_path)

    assert await redis_client.hgetall("done") == {kept["jobId"]: "1"}
    assert await state_of(api, queued["jobId"]) == "cancelled"
    assert await state_of(api, delayed["jobId"]) == "cancelled"


async def test_a_running_job_is_asked_to_stop_and_ends_cancelled(
    api: Api, redis_url: str, tmp_path: Path
) -> None:
    _, job = await api.call("POST", "/jobs", json={"type": "sleep", "payload": {"ms": 600_000}})
    args = ("--visibility-timeout-s", "2")
    with WorkerProcess(redis_url, "w1", *args, log_dir=tmp_path) as worker:

        async def running() -> bool:
            return await state_of(api, job["jobId"]) == "running"

        await until(running, "the job to run")
        status, answer = await api.call("DELETE", f"/jobs/{job['jobId']}")

        async def cancelled() -> bool:
            return await state_of(api, job["jobId"]) == "cancelled"

        await until(cancelled, f"the worker to cancel the job\n{worker.output()}")
    assert (status, answer["result"], answer["state"]) == (200, "cancel_requested", "running")


async def test_a_replayed_dead_letter_runs_to_success(
    api: Api, redis_client: AsyncRedis, redis_url: str, tmp_path: Path
) -> None:
    # Crashes its worker on the first delivery only (counted in Redis, across replays).
    _, job = await api.call(
        "POST", "/jobs", json={"type": "crash", "payload": {"times": 1, "into": "done"}}
    )
    first = WorkerProcess(redis_url, "w1", log_dir=tmp_path).start()
    assert await asyncio.to_thread(first.wait, DEADLINE_S) == 137
    args = ("--visibility-timeout-s", "1", "--max-deliveries", "1")
    with WorkerProcess(redis_url, "w2", *args, log_dir=tmp_path) as second:

        async def dead_letter() -> Any:
            _, page = await api.call("GET", "/dead")
            return page["items"]

        [dead] = await until(dead_letter, f"the dead letter\n{second.output()}")
        assert dead["jobId"] == job["jobId"]
        assert await state_of(api, job["jobId"]) == "dead"

        status, replayed = await api.call("POST", f"/dead/{dead['id']}/replay")
        assert status == 200

        async def succeeded() -> bool:
            return await state_of(api, job["jobId"]) == "succeeded"

        await until(succeeded, f"the replayed job to succeed\n{second.output()}")
    assert replayed["jobId"] == job["jobId"]
    assert await redis_client.hget("done", job["jobId"]) == "1"
    _, page = await api.call("GET", "/dead")
    assert page["items"] == []
