"""Redis unavailable: 503 with a clear body and a Retry-After, never a 500 or a traceback
(an enqueue names its job and says its outcome is unknown); the same producer serves
again once Redis is back."""

from __future__ import annotations

import asyncio

import redis
from producer.http_api import README_EXAMPLE, StartApi
from support.redis_server import RedisServer

from jobqueue.core.connection import async_redis
from jobqueue.core.keys import QueueKeys
from jobqueue.core.settings import QueueSettings

JSON = {"Content-Type": "application/json"}


async def test_redis_down_is_503_and_up_again_is_202(
    start_api: StartApi, own_redis: RedisServer
) -> None:
    redis = async_redis(own_redis.url, socket_timeout_s=2.0)
    api = await start_api(redis=redis)
    try:
        own_redis.kill()

        async with api.session.post(api.url("/jobs"), data=README_EXAMPLE, headers=JSON) as post:
            body = await post.json()
            assert post.status == 503
            assert post.headers["Retry-After"] == "1"
        assert (body["error"], body["outcome"]) == ("Outcome unknown", "unknown")
        assert body["jobId"]
        assert "Traceback" not in body["detail"]
        for path in ("/jobs/stats", "/jobs/01ANY", "/dead", "/readyz"):
            status, error = await api.call("GET", path)
            assert (status, error["error"]) == (503, "Redis unavailable"), path
        live, _ = await api.call("GET", "/healthz")
        assert live == 200

        own_redis.start()

        status, accepted = await api.call("POST", "/jobs", data=README_EXAMPLE)
        assert status == 202
        assert accepted["status"] == "accepted"
        unknown, _ = await api.call("GET", f"/jobs/{body['jobId']}")
        assert unknown == 404  # settled: Redis was down, nothing was written
    finally:
        await redis.aclose()


async def test_replicas_not_acknowledging_in_time_is_503_naming_each_callers_own_jobs(
    start_api: StartApi, sync_redis: redis.Redis
) -> None:
    # The session's Redis has no replica, so WAIT 1 can never be satisfied.
    queue = QueueSettings(enqueue_min_replicas=1, enqueue_replicas_timeout_ms=50)
    api = await start_api(queue=queue)

    answers = await asyncio.gather(
        *(api.call("POST", "/jobs", data=README_EXAMPLE) for _ in range(5))
    )
    ids = []
    for status, body in answers:
        assert (status, body["error"]) == (503, "Enqueue unconfirmed"), body
        assert "outcome unknown" in body["detail"] or "may or may not" in body["detail"]
        assert len(body["jobIds"]) == 1  # its own job, not those it shared a round trip with
        ids += body["jobIds"]
    # Written on the primary all the same: "unconfirmed" is never "not written".
    assert sorted(ids) == sorted(f["id"] for _, f in sync_redis.xrange(QueueKeys().stream))

    batch = {"jobs": [{"type": "email", "payload": {"to": "a@b.c", "template": "x"}}] * 3}
    status, body = await api.call("POST", "/jobs/batch", json=batch)
    assert status == 503
    assert len(body["jobIds"]) == 3
