"""Handler results: stored with the job's status on success, read through the client."""

from __future__ import annotations

import dataclasses

from redis.asyncio import Redis as AsyncRedis
from worker.conftest import KEYS, enqueue, run_burst, settings_for

from jobqueue.core.client import AsyncClient
from jobqueue.worker.app import App, JobContext
from jobqueue.worker.testing import app as testing_app


def _client(redis_client: AsyncRedis) -> AsyncClient:
    return AsyncClient(redis_client)


async def test_a_returned_value_is_the_jobs_result_and_none_stores_nothing(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given jobs returning values of every JSON kind, mixed with jobs returning None
    values = [{"sent": 3, "to": ["a@example.com"]}, [1, 2.5, "x"], 0, False, "", None, "é"]
    ids = [await enqueue(redis_client, "echo", {"value": v}) for v in values]
    nothing = await enqueue(redis_client, "noop")
    # when a worker runs them (several to one flush)
    assert await run_burst(testing_app, settings_for(redis_url)) == 0
    # then each record holds its own job's result, decoded by the client
    client = _client(redis_client)
    for job_id, value in zip(ids, values, strict=True):
        info = await client.get(job_id)
        assert info is not None
        assert (info.state, info.result, info.result_error) == ("succeeded", value, None)
    # and a job returning None costs no field at all
    for job_id in (ids[values.index(None)], nothing):
        info = await client.get(job_id)
        assert info is not None
        assert (info.state, info.result, info.result_error) == ("succeeded", None, None)
        assert not await redis_client.hexists(KEYS.status(job_id), "result")


async def test_a_sync_handlers_result_is_stored_too(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    app = App()

    @app.handler("square")
    def square(ctx: JobContext) -> int:
        return int(ctx.payload["n"]) ** 2

    job_id = await enqueue(redis_client, "square", {"n": 12})
    assert await run_burst(app, settings_for(redis_url)) == 0
    info = await _client(redis_client).get(job_id)
    assert info is not None
    assert info.result == 144


async def test_a_result_over_the_cap_is_not_stored_and_the_job_still_succeeds(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given a cap of 100 bytes and one result under it, one over it
    small = await enqueue(redis_client, "echo", {"value": "x" * 50})
    large = await enqueue(redis_client, "echo", {"value": "x" * 200})
    settings = dataclasses.replace(settings_for(redis_url), result_max_bytes=100)
    assert await run_burst(testing_app, settings) == 0
    client = _client(redis_client)
    # then the small one is stored, the large one is not, and its record says why
    info = await client.get(small)
    assert info is not None
    assert info.result == "x" * 50
    info = await client.get(large)
    assert info is not None
    assert (info.state, info.result) == ("succeeded", None)
    assert info.result_error is not None
    assert "too large (202 bytes > 100)" in info.result_error


async def test_a_value_that_is_not_json_is_not_stored_and_the_reason_is_logged(
    redis_client: AsyncRedis, redis_url: str, caplog: object
) -> None:
    app = App()

    @app.handler("odd")
    async def odd(ctx: JobContext) -> object:
        return {"when": object()}

    job_id = await enqueue(redis_client, "odd")
    assert await run_burst(app, settings_for(redis_url)) == 0
    info = await _client(redis_client).get(job_id)
    assert info is not None
    assert (info.state, info.result) == ("succeeded", None)
    assert info.result_error is not None
    assert "not JSON-serialisable" in info.result_error
    assert "not JSON-serialisable" in caplog.text  # type: ignore[attr-defined]


async def test_the_result_expires_with_the_status_record(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    job_id = await enqueue(redis_client, "echo", {"value": 1})
    assert await run_burst(testing_app, settings_for(redis_url)) == 0
    ttl = await redis_client.ttl(KEYS.status(job_id))
    assert 0 < ttl <= settings_for(redis_url).queue.status_ttl_s
    assert await redis_client.hget(KEYS.status(job_id), "result") == "1"
