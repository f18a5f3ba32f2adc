"""Redis unavailable: 503 with a clear body and a Retry-After, never a 500 or a traceback;
the same producer serves again once Redis is back."""

from __future__ import annotations

from producer.http_api import README_EXAMPLE, StartApi
from support.redis_server import RedisServer

from jobqueue.core.connection import async_redis


async def test_redis_down_is_503_and_up_again_is_202(
    start_api: StartApi, own_redis: RedisServer
) -> None:
    redis = async_redis(own_redis.url, socket_timeout_s=2.0)
    api = await start_api(redis=redis)
    try:
        own_redis.kill()

        async with api.session.post(api.url("/jobs"), data=README_EXAMPLE) as response:
            body = await response.json()
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
        assert body["error"] == "Redis unavailable"
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
    finally:
        await redis.aclose()
