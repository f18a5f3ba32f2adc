"""A job's result over real HTTP (`GET /jobs/{id}`) and through `jobqueue jobs get`."""

from __future__ import annotations

import asyncio
import dataclasses

import orjson
from click.testing import CliRunner
from producer.http_api import Api
from redis.asyncio import Redis as AsyncRedis

from jobqueue.cli.main import cli
from jobqueue.core.settings import QueueSettings
from jobqueue.worker.runner import Worker
from jobqueue.worker.settings import WorkerSettings
from jobqueue.worker.testing import app as testing_app


async def burst(redis_url: str, **overrides: object) -> None:
    """Run an in-process worker until the queue is empty."""
    settings = WorkerSettings(
        queue=QueueSettings(redis_url=redis_url, status_ttl_s=3600),
        consumer="results-test",
        http_port=0,
        block_ms=100,
        burst=True,
    )
    worker = Worker(testing_app, dataclasses.replace(settings, **overrides))  # type: ignore[arg-type]
    assert await asyncio.wait_for(worker.run(handle_signals=False), 60) == 0


async def test_get_job_returns_the_result_and_why_one_was_not_stored(
    api: Api, redis_client: AsyncRedis, redis_url: str
) -> None:
    value = {"total": 42, "items": ["a", None, 1.5]}
    _, small = await api.call("POST", "/jobs", json={"type": "echo", "payload": {"value": value}})
    _, large = await api.call(
        "POST", "/jobs", json={"type": "echo", "payload": {"value": "y" * 500}}
    )
    _, none = await api.call("POST", "/jobs", json={"type": "noop", "payload": {}})

    await burst(redis_url, result_max_bytes=400)

    status, body = await api.call("GET", f"/jobs/{small['jobId']}")
    assert (status, body["state"], body["result"], body["resultError"]) == (
        200, "succeeded", value, None
    )  # fmt: skip
    _, body = await api.call("GET", f"/jobs/{large['jobId']}")
    assert (body["state"], body["result"]) == ("succeeded", None)
    assert "too large" in body["resultError"]
    _, body = await api.call("GET", f"/jobs/{none['jobId']}")
    assert (body["state"], body["result"], body["resultError"]) == ("succeeded", None, None)


async def test_jobs_get_shows_the_result(redis_url: str) -> None:
    async def run(*args: str) -> str:
        # The CLI runs its own event loop: off this test's loop.
        invoke = CliRunner().invoke
        result = await asyncio.to_thread(invoke, cli, list(args), env={"REDIS_URL": redis_url})
        assert result.exit_code == 0, result.output
        return result.output

    [job] = orjson.loads(await run("enqueue", "echo", '{"value": {"n": 0}}', "--json"))
    await burst(redis_url)

    shown = orjson.loads(await run("jobs", "get", job["jobId"], "--json"))
    table = await run("jobs", "get", job["jobId"])

    assert (shown["state"], shown["result"]) == ("succeeded", {"n": 0})
    assert '{"n":0}' in table
