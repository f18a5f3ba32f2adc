"""``GET /jobs/{id}?wait=S`` over real HTTP: answers when the job settles or the time is
up, within the request deadline stretched by the wait, and caps the wait."""

from __future__ import annotations

import asyncio

from producer.http_api import Api, StartApi
from producer.test_results_api import burst
from redis.asyncio import Redis as AsyncRedis

JOIN_S = 60.0


async def test_a_long_poll_answers_when_the_job_settles(
    api: Api, redis_client: AsyncRedis, redis_url: str
) -> None:
    _, job = await api.call("POST", "/jobs", json={"type": "echo", "payload": {"value": "hi"}})
    poll = asyncio.create_task(api.call("GET", f"/jobs/{job['jobId']}?wait=30"))
    await asyncio.sleep(0.2)
    assert not poll.done()

    await burst(redis_url)

    status, body = await asyncio.wait_for(poll, JOIN_S)
    assert (status, body["state"], body["result"]) == (200, "succeeded", "hi")


async def test_a_long_poll_outlives_the_request_deadline_and_answers_the_current_state(
    start_api: StartApi,
) -> None:
    # given a producer whose requests have 0.3 s for Redis, and a job no worker runs
    api = await start_api(request_deadline_s=0.3)
    _, job = await api.call("POST", "/jobs", json={"type": "noop", "payload": {}})
    # when a client waits 1 s for it: it is answered after its wait, not 503 at 0.55 s
    status, body = await api.call("GET", f"/jobs/{job['jobId']}?wait=1")
    assert (status, body["state"]) == (200, "queued")


async def test_the_wait_is_capped_by_the_setting(start_api: StartApi) -> None:
    # given a cap of 0.5 s: a request asking an hour is answered after the cap
    api = await start_api(max_wait_s=0.5)
    _, job = await api.call("POST", "/jobs", json={"type": "noop", "payload": {}})
    status, body = await asyncio.wait_for(
        api.call("GET", f"/jobs/{job['jobId']}?wait=3600"), JOIN_S
    )
    assert (status, body["state"]) == (200, "queued")


async def test_a_bad_wait_is_422_and_an_unknown_job_404(api: Api) -> None:
    for bad in ("soon", "-1", "nan", "inf"):
        status, body = await api.call("GET", f"/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV?wait={bad}")
        assert status == 422, bad
        assert body["error"] == "Invalid wait", body
    status, _ = await api.call("GET", "/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV?wait=1")
    assert status == 404
