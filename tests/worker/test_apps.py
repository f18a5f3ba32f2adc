"""The two apps shipped in the package: the demo's four job types, the testing types."""

from __future__ import annotations

import socket

from redis.asyncio import Redis as AsyncRedis
from worker.conftest import dead_letters, enqueue, record_of, run_burst, settings_for

from jobqueue.worker.demo import app as demo_app
from jobqueue.worker.runner import Worker
from jobqueue.worker.testing import app as testing_app


async def test_the_demo_app_runs_its_four_job_types_and_rejects_bad_payloads(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    good = [
        await enqueue(redis_client, "email", {"to": "a@example.com", "template": "welcome"}),
        await enqueue(redis_client, "report", {"report_id": 42}),
        await enqueue(redis_client, "webhook", {"url": "https://example.com/hook"}),
        await enqueue(redis_client, "thumbnail", {"image_url": "https://example.com/a.png"}),
    ]
    bad = await enqueue(redis_client, "email", {"template": "welcome"})
    assert await run_burst(demo_app, settings_for(redis_url), timeout_s=90) == 0
    for job_id in good:
        assert (await record_of(redis_client, job_id)).get("state") == "succeeded"
    [dead] = await dead_letters(redis_client)
    assert dead["original_id"] == bad
    assert dead["reason"] == "fatal: Fatal: email needs a non-empty string in payload field 'to'"


async def test_the_testing_app_registers_exactly_the_documented_types() -> None:
    assert sorted(testing_app.handlers) == [
        "crash",
        "credit",
        "echo",
        "fail",
        "hold",
        "noop",
        "record",
        "sleep",
        "stamp",
    ]
    assert sorted(demo_app.handlers) == ["email", "report", "thumbnail", "webhook"]


async def test_noop_and_sleep_jobs_succeed(redis_client: AsyncRedis, redis_url: str) -> None:
    ids = [await enqueue(redis_client, "noop"), await enqueue(redis_client, "sleep", {"ms": 20})]
    bad_sleep = await enqueue(redis_client, "sleep", {"ms": "long"})
    assert await run_burst(testing_app, settings_for(redis_url)) == 0
    for job_id in ids:
        assert (await record_of(redis_client, job_id)).get("state") == "succeeded"
    [dead] = await dead_letters(redis_client)
    assert dead["original_id"] == bad_sleep
    assert dead["reason"].startswith("fatal:")


async def test_a_taken_http_port_is_a_clear_start_failure(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = settings_for(redis_url, http_port=port, http_host="127.0.0.1")
        assert await Worker(testing_app, settings).run(handle_signals=False) == 2
