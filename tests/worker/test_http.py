"""The worker's HTTP side server over real HTTP: /healthz, /readyz, /metrics."""

from __future__ import annotations

import asyncio

import aiohttp
from redis.asyncio import Redis as AsyncRedis
from support.redis_server import RedisServer, free_port
from worker.conftest import dead_letters, enqueue, eventually, running, settings_for

from jobqueue.core.connection import async_redis
from jobqueue.worker.testing import app as testing_app


async def test_health_readiness_and_metrics(redis_client: AsyncRedis, redis_url: str) -> None:
    port = free_port()
    settings = settings_for(redis_url, http_port=port, http_host="127.0.0.1")
    await enqueue(redis_client, "record", {"into": "done"})
    await enqueue(redis_client, "nope")
    base = f"http://127.0.0.1:{port}"
    async with running(testing_app, settings), aiohttp.ClientSession() as http:
        await eventually(lambda: _has_dead(redis_client), what="the dead letter")
        await eventually(lambda: _status(http, f"{base}/healthz", 200), what="the server")
        async with http.get(f"{base}/healthz") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ok"
        async with http.get(f"{base}/readyz") as response:
            assert response.status == 200
        async with http.get(f"{base}/metrics") as response:
            assert response.status == 200
            text = await response.text()
    q = 'queue="jobs:work"'
    assert f'jobqueue_jobs_total{{outcome="succeeded",{q},type="record"}} 1.0' in text
    dead = f'jobqueue_jobs_dead_lettered_total{{{q},reason="no_handler",type="_unknown"}} 1.0'
    assert dead in text
    assert f'jobqueue_job_duration_seconds_count{{{q},type="record"}} 1.0' in text
    # the job that ran waited once; the one without a handler never started
    assert f'jobqueue_job_wait_seconds_count{{{q},type="record"}} 1.0' in text
    assert f'jobqueue_job_wait_seconds_bucket{{le="+Inf",{q},type="record"}} 1.0' in text
    assert f"jobqueue_jobs_in_flight{{{q}}} 0.0" in text
    assert f"jobqueue_jobs_reclaimed_total{{{q}}} 0.0" in text
    # the standard collectors and the Redis errors are there too
    for family in ("process_cpu_seconds_total", "python_info", "python_gc_collections_total"):
        assert family in text
    assert "# TYPE jobqueue_redis_errors_total counter" in text


async def _has_dead(client: AsyncRedis) -> bool:
    return len(await dead_letters(client)) == 1


async def test_readiness_follows_redis_while_health_stays_up(own_redis: RedisServer) -> None:
    port = free_port()
    settings = settings_for(own_redis.url, http_port=port, http_host="127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    async with running(testing_app, settings), aiohttp.ClientSession() as http:
        await eventually(lambda: _status(http, f"{base}/readyz", 200), what="ready")
        # when Redis goes away, the worker is not ready but still healthy (no restart)
        own_redis.kill()
        await eventually(lambda: _status(http, f"{base}/readyz", 503), what="not ready")
        assert await _status(http, f"{base}/healthz", 200)
        # and when it is back, the worker is ready again and works
        own_redis.start()
        await eventually(lambda: _status(http, f"{base}/readyz", 200), what="ready again")
        client = async_redis(own_redis.url)
        try:
            job_id = await enqueue(client, "record", {"into": "done"})

            async def recorded() -> bool:
                return await client.hget("done", job_id) == "1"

            await eventually(recorded, what="a job after the outage")
        finally:
            await client.aclose()


async def _status(http: aiohttp.ClientSession, url: str, expected: int) -> bool:
    try:
        async with http.get(url) as response:
            return response.status == expected
    except aiohttp.ClientConnectionError:  # the side server is not listening yet
        return False


async def test_the_wait_histogram_measures_from_the_entrys_time_to_the_start(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # Given a job whose stream entry was added 40 s ago
    seconds, _ = await redis_client.time()
    fields = {"id": "waited", "type": "record", "payload": '{"into": "done"}'}
    await redis_client.xadd("jobs:work", fields, id=f"{(seconds - 40) * 1000}-0")  # type: ignore[arg-type]
    port = free_port()
    settings = settings_for(redis_url, http_port=port, http_host="127.0.0.1")
    async with running(testing_app, settings), aiohttp.ClientSession() as http:

        async def done() -> bool:
            return await redis_client.hget("done", "waited") == "1"

        await eventually(done, what="the job")
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()

    labels = 'queue="jobs:work",type="record"'
    assert f'jobqueue_job_wait_seconds_bucket{{le="30.0",{labels}}} 0.0' in text
    assert f'jobqueue_job_wait_seconds_bucket{{le="60.0",{labels}}} 1.0' in text


async def test_redis_outages_are_counted_by_kind(own_redis: RedisServer) -> None:
    port = free_port()
    settings = settings_for(own_redis.url, http_port=port, http_host="127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    line = 'jobqueue_redis_errors_total{component="worker",kind="connection"}'
    async with running(testing_app, settings), aiohttp.ClientSession() as http:
        await eventually(lambda: _status(http, f"{base}/readyz", 200), what="ready")
        before = _value(await _get(http, f"{base}/metrics"), line)
        own_redis.kill()

        async def counted() -> bool:
            return _value(await _get(http, f"{base}/metrics"), line) > before

        await eventually(counted, what="a counted connection error")
        own_redis.start()


async def _get(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        return await response.text()


def _value(text: str, series: str) -> float:
    for row in text.splitlines():
        if row.startswith(series + " "):
            return float(row.split()[-1])
    return 0.0


async def test_the_side_server_answers_what_it_does_not_serve_in_words(
    redis_url: str,
) -> None:
    port = free_port()
    settings = settings_for(redis_url, http_port=port, http_host="127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    async with running(testing_app, settings), aiohttp.ClientSession() as http:
        await eventually(lambda: _status(http, f"{base}/healthz", 200), what="the server")
        async with http.get(f"{base}/nothing") as response:
            assert response.status == 404
        async with http.post(f"{base}/metrics") as response:
            assert response.status == 405
        async with http.head(f"{base}/healthz") as response:
            assert response.status == 200
        async with http.get(f"{base}/readyz?verbose=1") as response:
            assert (await response.json())["status"] == "ready"
        # a client that speaks no HTTP gets a 400 and the server goes on serving
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
        writer.close()
        assert await _status(http, f"{base}/healthz", 200)
