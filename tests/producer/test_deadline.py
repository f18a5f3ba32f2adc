"""Every request answers by its deadline while Redis hangs: 503 with Retry-After, an
enqueue naming its job and saying whether it may have been written; a retry with that
id never enqueues twice, and ``GET /jobs/{id}`` settles the question."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from producer.http_api import README_EXAMPLE, Api, StartApi
from redis.asyncio import Redis as AsyncRedis
from support.redis_server import RedisServer

from jobqueue.core.connection import async_redis
from jobqueue.core.keys import QueueKeys
from jobqueue.producer.context import BATCHER

KEYS = QueueKeys()
DEADLINE_S = 1.0
ANSWERED_WITHIN_S = 15.0
"""Far above the deadline (a loaded machine), far below the 30 s socket timeout."""


@pytest.fixture
async def probe(redis_url: str) -> AsyncIterator[AsyncRedis]:
    client = async_redis(redis_url)
    yield client
    await client.execute_command("CLIENT", "UNPAUSE")
    await client.aclose()


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def timed(call: Awaitable[tuple[int, Any]]) -> tuple[int, Any, float]:
    started = time.monotonic()
    status, body = await call
    return status, body, time.monotonic() - started


async def test_enqueues_held_by_redis_answer_503_by_the_deadline_with_their_ids(
    start_api: StartApi, redis_client: AsyncRedis, probe: AsyncRedis
) -> None:
    api = await start_api(request_deadline_s=DEADLINE_S)
    await api.call("POST", "/jobs", data=README_EXAMPLE)  # the script is loaded
    await redis_client.delete(KEYS.stream)
    await probe.execute_command("CLIENT", "PAUSE", "60000", "WRITE")

    sent = asyncio.create_task(timed(api.call("POST", "/jobs", data=README_EXAMPLE)))

    async def held() -> bool:
        return int((await probe.info("clients"))["blocked_clients"]) == 1

    await until(held, "the first enqueue to be held in Redis")
    behind = asyncio.create_task(timed(api.call("POST", "/jobs", data=README_EXAMPLE)))
    (status, unknown, took), (status_behind, behind_body, took_behind) = await asyncio.gather(
        sent, behind
    )

    assert (status, status_behind) == (503, 503)
    assert max(took, took_behind) < ANSWERED_WITHIN_S
    assert (unknown["error"], unknown["outcome"]) == ("Outcome unknown", "unknown")
    # Sent once the first call was given up, or still waiting: either way it says so.
    assert behind_body["outcome"] in ("unknown", "not_enqueued")
    assert unknown["jobId"]
    assert behind_body["jobId"]
    assert "GET /jobs/" in unknown["detail"]

    # Redis resumes and runs the held calls: past their deadline, they write nothing.
    await probe.execute_command("CLIENT", "UNPAUSE")
    await until(lambda: _no_call_held(probe), "the held call to run")
    for body in (unknown, behind_body):
        status, _ = await api.call("GET", f"/jobs/{body['jobId']}")
        assert status == 404
    assert await redis_client.xlen(KEYS.stream) == 0

    # The caller retries with the id it was given: enqueued once, however often it retries.
    retry = orjson.dumps({**orjson.loads(README_EXAMPLE), "job_id": unknown["jobId"]})
    answers = [await api.call("POST", "/jobs", data=retry) for _ in range(3)]

    assert [status for status, _ in answers] == [202, 202, 202]
    assert [body["duplicate"] for _, body in answers] == [False, True, True]
    assert {body["jobId"] for _, body in answers} == {unknown["jobId"]}
    assert await redis_client.xlen(KEYS.stream) == 1
    assert api.server.app[BATCHER].waiting == 0


async def _no_call_held(probe: AsyncRedis) -> bool:
    return int((await probe.info("clients"))["blocked_clients"]) == 0


async def test_a_batch_held_by_redis_answers_503_with_every_job_id(
    start_api: StartApi, redis_client: AsyncRedis, probe: AsyncRedis
) -> None:
    api = await start_api(request_deadline_s=DEADLINE_S)
    batch = {"jobs": [orjson.loads(README_EXAMPLE)] * 3}
    await probe.execute_command("CLIENT", "PAUSE", "60000", "WRITE")

    status, body, took = await timed(api.call("POST", "/jobs/batch", data=orjson.dumps(batch)))

    assert status == 503
    assert took < ANSWERED_WITHIN_S
    assert body["outcome"] == "unknown"
    assert len(set(body["jobIds"])) == 3
    await probe.execute_command("CLIENT", "UNPAUSE")
    ids = body["jobIds"]
    retry = {"jobs": [{**job, "job_id": i} for job, i in zip(batch["jobs"], ids, strict=True)]}
    for _ in range(2):
        status, _ = await api.call("POST", "/jobs/batch", data=orjson.dumps(retry))
        assert status == 202
    assert await redis_client.xlen(KEYS.stream) == 3


async def test_an_enqueue_redis_refuses_is_503_not_enqueued(
    api: Api, redis_client: AsyncRedis
) -> None:
    await redis_client.config_set("maxmemory", "1")
    try:
        status, body = await api.call("POST", "/jobs", data=README_EXAMPLE)
    finally:
        await redis_client.config_set("maxmemory", "0")

    assert status == 503
    assert (body["error"], body["outcome"]) == ("Redis unavailable", "not_enqueued")
    assert "OutOfMemoryError" in body["detail"]
    status, _ = await api.call("GET", f"/jobs/{body['jobId']}")
    assert status == 404


async def test_every_route_answers_503_by_its_deadline_while_redis_is_frozen(
    start_api: StartApi, own_redis: RedisServer
) -> None:
    redis = async_redis(own_redis.url)  # the default 30 s socket timeout
    api = await start_api(redis=redis, request_deadline_s=DEADLINE_S)
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        calls = [
            ("POST", "/jobs", {"data": README_EXAMPLE}),
            ("POST", "/jobs/batch", {"data": b'{"jobs":[%s]}' % README_EXAMPLE}),
            ("GET", "/jobs/stats", {}),
            ("GET", "/jobs/01ANY", {}),
            ("DELETE", "/jobs/01ANY", {}),
            ("GET", "/dead", {}),
            ("POST", "/dead/1-1/replay", {}),
            ("DELETE", "/dead/1-1", {}),
            ("GET", "/readyz", {}),
        ]
        answers = await asyncio.gather(
            *(timed(api.call(method, path, **kwargs)) for method, path, kwargs in calls)
        )
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
        await redis.aclose()

    for (method, path, _), (status, body, took) in zip(calls, answers, strict=True):
        assert status == 503, (method, path, body)
        assert took < ANSWERED_WITHIN_S, (method, path)
    assert answers[0][1]["outcome"] == "unknown"
    assert answers[2][1]["error"] == "Deadline exceeded"


async def test_the_openapi_document_says_how_to_retry_an_enqueue_safely(api: Api) -> None:
    _, document = await api.call("GET", "/openapi.json")

    post = document["paths"]["/jobs"]["post"]
    assert "job_id" in post["responses"]["503"]["description"]
    assert "415" in post["responses"]
    job_in = document["components"]["schemas"]["JobIn"]["properties"]
    assert "retrying with it is always safe" in job_in["job_id"]["description"]
    error = document["components"]["schemas"]["ErrorBody"]["properties"]
    assert {"outcome", "jobId", "jobIds"} <= set(error)
