"""Outcomes, each atomic with its acknowledgement, against a real Redis.

A worker runs in-process (burst mode, or until stopped); the test enqueues SPEC §2
entries with XADD and reads the streams, the delayed set and the status records.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import orjson
import redis
from redis.asyncio import Redis as AsyncRedis
from worker.conftest import (
    DEAD,
    KEYS,
    STREAM,
    dead_letters,
    enqueue,
    eventually,
    group_pending,
    record_of,
    record_ttl,
    run_burst,
    running,
    settings_for,
)

from jobqueue.core.errors import Fatal, Retry
from jobqueue.worker.app import App, JobContext
from jobqueue.worker.backoff import Backoff
from jobqueue.worker.testing import app as testing_app


async def test_successful_jobs_are_acked_and_their_records_say_succeeded(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given three record jobs
    ids = [await enqueue(redis_client, "record", {"into": "done"}) for _ in range(3)]
    # when a burst worker runs
    assert await run_burst(testing_app, settings_for(redis_url)) == 0
    # then each ran once, nothing is pending, and the status records say so
    assert await redis_client.hgetall("done") == {i: "1" for i in ids}
    assert await group_pending(redis_client) == 0
    record = await record_of(redis_client, ids[0])
    assert record["state"] == "succeeded"
    assert record["attempts"] == "1"
    assert record["finished_at"]
    assert record["started_at"]
    # the worker writes what enqueue left in the entry alone (type, enqueued_at)
    assert record["type"] == "record"
    assert record["enqueued_at"].startswith(record["finished_at"][:4])
    assert 0 < await record_ttl(redis_client, ids[0]) <= 7 * 24 * 3600


async def test_a_job_that_finishes_at_once_gets_its_running_fields_with_its_success(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given noop jobs, which finish before their running mark is sent (one flush for both)
    ids = [await enqueue(redis_client, "noop") for _ in range(3)]
    entry_ids = [entry_id for entry_id, _ in await redis_client.xrange(STREAM)]
    # when a burst worker runs them
    assert await run_burst(testing_app, settings_for(redis_url)) == 0
    # then each record is complete: what the running mark writes, then the success
    for job_id, entry_id in zip(ids, entry_ids, strict=True):
        record = await record_of(redis_client, job_id)
        assert record["state"] == "succeeded"
        assert (record["attempts"], record["entry_id"], record["type"]) == ("1", entry_id, "noop")
        assert record["started_at"]
        assert record["finished_at"]
        assert 0 < await record_ttl(redis_client, job_id) <= 7 * 24 * 3600


async def test_a_settled_record_is_not_given_running_fields_by_a_late_success(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given a job whose record already shows an outcome when the worker picks it up
    job_id = await enqueue(redis_client, "noop")
    await redis_client.hset(KEYS.status(job_id), mapping={"state": "cancelled"})
    # when a burst worker runs it
    assert await run_burst(testing_app, settings_for(redis_url)) == 0
    # then a record showing an outcome is never marked running: only the success lands
    record = await record_of(redis_client, job_id)
    assert record["state"] == "succeeded"
    assert "started_at" not in record
    assert "type" not in record


async def test_many_short_jobs_at_low_concurrency_are_all_acknowledged_once(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given more jobs than the worker holds at once (the reader carries the acks)
    ids = [await enqueue(redis_client, "record", {"into": "done"}) for _ in range(300)]
    ids += [await enqueue(redis_client, "noop") for _ in range(300)]
    # when a burst worker with 4 slots runs them
    assert await run_burst(testing_app, settings_for(redis_url, concurrency=4)) == 0
    # then every job ran once, nothing is pending, every record says succeeded
    assert await redis_client.hgetall("done") == {i: "1" for i in ids[:300]}
    assert await group_pending(redis_client) == 0
    assert {(await record_of(redis_client, job_id)).get("state") for job_id in ids} == {"succeeded"}


async def test_a_failing_job_retries_with_growing_delays_then_is_dead_lettered(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given a handler that always fails, with a backoff pinned to its ceiling
    app, seen = App(), []

    @app.handler("flaky", max_attempts=4, backoff=Backoff(base_s=0.3, cap_s=10, rng=lambda: 1.0))
    async def flaky(ctx: JobContext) -> None:
        seen.append(time.monotonic())
        raise RuntimeError("downstream is down")

    job_id = await enqueue(redis_client, "flaky", {"x": 1}, trace_id="t-1")
    # when it runs to the end
    assert await run_burst(app, settings_for(redis_url)) == 0
    # then it ran max_attempts times, each wait longer than the last (0.3, 0.6, 1.2 s)
    assert len(seen) == 4
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert gaps[0] >= 0.3
    assert gaps[1] >= 0.6
    assert gaps[2] >= 1.2
    assert gaps[0] < gaps[2]
    # and it is in the dead-letter stream with the SPEC fields, the reason and a traceback
    [dead] = await dead_letters(redis_client)
    assert dead["original_id"] == job_id
    assert dead["type"] == "flaky"
    assert dead["payload"] == '{"x":1}'
    assert dead["attempts"] == "4"
    assert dead["reason"].startswith("attempts: attempts exhausted (4/4)")
    assert "downstream is down" in dead["reason"]
    assert "RuntimeError" in dead["traceback"]
    assert dead["trace_id"] == "t-1"
    assert dead["source_stream"] == STREAM
    assert dead["failed_at"]
    record = await record_of(redis_client, job_id)
    assert record["state"] == "dead"
    assert record["attempts"] == "4"
    assert await group_pending(redis_client) == 0
    assert await redis_client.zcard(KEYS.delayed) == 0


async def test_a_retry_waits_in_the_delayed_set_with_its_fields_and_attempts(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given a job that fails once, with a long backoff so it is caught waiting (the delay
    # is drawn from [0, 1 h]; from [0, 30 s], a draw shorter than the second the checks
    # took on a loaded machine, a few percent of runs, let the retry go before them)
    job_id = await enqueue(redis_client, "fail", {"times": 1, "into": "done"}, trace_id="abc")
    settings = settings_for(redis_url, backoff_base_s=3600, backoff_cap_s=3600)
    async with running(testing_app, settings):
        # when the first attempt failed
        await eventually(
            lambda: redis_client.zscore(KEYS.delayed, job_id), what="a scheduled retry"
        )
    # then the delayed set holds it with a due time within the backoff and its fields
    due_ms = await redis_client.zscore(KEYS.delayed, job_id)
    assert due_ms is not None
    assert due_ms <= (time.time() + 3600) * 1000
    fields = orjson.loads(await redis_client.hget(KEYS.delayed_jobs, job_id) or "{}")
    assert fields["attempts"] == "1"
    assert fields["trace_id"] == "abc"
    assert fields["id"] == job_id
    record = await record_of(redis_client, job_id)
    assert record["state"] == "retrying"
    assert "failing on purpose" in record["last_error"]
    assert record["run_at"]
    assert record["attempts"] == "1"
    assert (record["type"], record["enqueued_at"][:2]) == ("fail", "20")
    # and the original entry is acknowledged (the retry lives in Redis, not in memory)
    assert await group_pending(redis_client) == 0


async def test_a_due_retry_runs_again_and_succeeds(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    job_id = await enqueue(redis_client, "fail", {"times": 2, "into": "done"})
    assert await run_burst(testing_app, settings_for(redis_url)) == 0
    assert await redis_client.hgetall("done") == {job_id: "1"}
    record = await record_of(redis_client, job_id)
    assert record["state"] == "succeeded"
    assert record["attempts"] == "3"


async def test_retry_and_fatal_exceptions_steer_the_outcome(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    app, runs = App(), {"again": 0}

    @app.handler("again", max_attempts=5)
    async def again(ctx: JobContext) -> None:
        runs["again"] += 1
        if ctx.attempt == 1:
            raise Retry("not yet", delay_s=0.05)

    @app.handler("hopeless", max_attempts=5)
    async def hopeless(ctx: JobContext) -> None:
        raise Fatal("this can never work")

    await enqueue(redis_client, "again")
    hopeless_id = await enqueue(redis_client, "hopeless")
    assert await run_burst(app, settings_for(redis_url)) == 0
    assert runs["again"] == 2
    [dead] = await dead_letters(redis_client)
    assert dead["original_id"] == hopeless_id
    assert dead["attempts"] == "1"
    assert dead["reason"] == "fatal: Fatal: this can never work"


async def test_malformed_entries_and_unknown_types_are_dead_lettered_at_once(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given entries that break SPEC §2 in different ways, and one of an unknown type
    bad = [
        {"payload": "{}"},
        {"type": "record", "payload": "not json"},
        {"type": "record", "payload": "[1, 2]"},
        {"type": "record", "payload": "{}", "priority": "high"},
        {"type": "record", "payload": "{}", "attempts": "-1"},
        {"type": "record"},
    ]
    entry_ids = [await redis_client.xadd(STREAM, fields) for fields in bad]  # type: ignore[arg-type]
    entry_ids.append(
        await redis_client.xadd(STREAM, {"type": "no-such-type", "payload": "{}", "keep": "me"})
    )
    # when a worker runs
    assert await run_burst(testing_app, settings_for(redis_url)) == 0
    # then every one is a dead letter with its reason, and nothing is left pending
    dead = {d["original_entry_id"]: d for d in await dead_letters(redis_client)}
    reasons = [dead[entry_id]["reason"] for entry_id in entry_ids]
    assert reasons[0] == "malformed: missing field 'type'"
    assert reasons[1].startswith("malformed: 'payload' is not valid JSON")
    assert reasons[2] == "malformed: 'payload' must be a JSON object, not list"
    assert reasons[3].startswith("malformed: 'priority' must be an integer")
    assert reasons[4].startswith("malformed: 'attempts' must not be negative")
    assert reasons[5] == "malformed: missing field 'payload'"
    assert reasons[6] == "no_handler: no handler for type 'no-such-type'"
    assert dead[entry_ids[6]]["keep"] == "me"
    assert dead[entry_ids[2]]["payload"] == "[1, 2]"
    assert await group_pending(redis_client) == 0


async def test_a_timed_out_job_is_a_failed_attempt_and_others_are_not_disturbed(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    app = App()

    @app.handler("hang", timeout_s=0.3, max_attempts=1)
    async def hang(ctx: JobContext) -> None:
        await asyncio.Event().wait()

    @app.handler("boom", max_attempts=1)
    async def boom(ctx: JobContext) -> None:
        raise ValueError("boom")

    @app.handler("ok")
    async def ok(ctx: JobContext) -> None:
        await asyncio.sleep(0.05)
        await ctx.redis.hincrby("done", ctx.job.id, 1)

    hang_id = await enqueue(redis_client, "hang")
    await enqueue(redis_client, "boom")
    ok_ids = [await enqueue(redis_client, "ok") for _ in range(20)]
    assert await run_burst(app, settings_for(redis_url)) == 0
    assert await redis_client.hgetall("done") == {i: "1" for i in ok_ids}
    dead = {d["original_id"]: d["reason"] for d in await dead_letters(redis_client)}
    assert "timed out after 0.3 s" in dead[hang_id]
    assert len(dead) == 2


async def test_sync_handlers_run_off_the_event_loop(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    app, threads = App(), []

    @app.handler("blocking")
    def blocking(ctx: JobContext) -> None:
        threads.append(threading.current_thread().name)
        time.sleep(0.2)  # would stall every other job if it ran on the loop

    for _ in range(4):
        await enqueue(redis_client, "blocking")
    started = time.monotonic()
    assert await run_burst(app, settings_for(redis_url)) == 0
    assert len(threads) == 4
    assert all(name.startswith("jobqueue-job") for name in threads)
    # four 0.2 s sleeps in parallel threads, not one after another on the loop
    assert time.monotonic() - started < 0.8 + 5  # generous: load must not fail this
    assert threading.main_thread().name not in threads


async def test_a_cancel_request_stops_the_running_handler_and_records_cancelled(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    job_id = await enqueue(redis_client, "sleep", {"ms": 60_000})
    settings = settings_for(redis_url, visibility_timeout_s=0.3)  # heartbeat every 0.1 s
    record_key = KEYS.status(job_id)
    async with running(testing_app, settings):

        async def is_running() -> bool:
            return await redis_client.hget(record_key, "state") == "running"

        await eventually(is_running, what="the job to run")
        # when the client asks to cancel it (the producer's half of the protocol)
        await redis_client.hset(record_key, "cancel_requested", "1")

        async def is_cancelled() -> bool:
            return await redis_client.hget(record_key, "state") == "cancelled"

        await eventually(is_cancelled, what="state cancelled")
    assert await group_pending(redis_client) == 0
    assert await redis_client.xlen(DEAD) == 0


async def test_entries_that_are_not_utf8_are_dead_lettered_with_their_bytes_intact(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    # given entries from a producer that does not speak UTF-8, next to a good one
    raw = redis.Redis.from_url(redis_url)  # bytes in, bytes out
    bad = [
        {b"type": b"record", b"payload": b'{"into": "\xff\xfe"}'},
        {b"type": b"record", b"payload": b"{}", b"x": b"\xc3("},
        {b"type": b"record", b"payload": b"{}", b"id": b"job-\xff"},
    ]
    bad_ids = [raw.xadd(STREAM, fields) for fields in bad]  # type: ignore[arg-type]
    raw.xadd(STREAM, {b"type": b"record", b"payload": b'{"into": "done"}', b"id": b"ok"})
    # when a worker runs
    assert await run_burst(testing_app, settings_for(redis_url)) == 0
    # then each bad one is a dead letter with its reason and the producer's bytes, the
    # good one ran, and nothing is left pending
    dead = {fields[b"original_entry_id"]: fields for _, fields in raw.xrange(DEAD)}
    first, second, third = (dead[entry_id] for entry_id in bad_ids)
    assert first[b"reason"].startswith(b"malformed: 'payload' is not valid JSON")
    assert first[b"payload"] == b'{"into": "\xff\xfe"}'
    assert second[b"reason"] == b"malformed: 'x' is not valid UTF-8"
    assert second[b"x"] == b"\xc3("
    assert third[b"reason"] == b"malformed: 'id' is not valid UTF-8"
    assert third[b"original_id"] == b"job-\xff"
    assert sync_redis.hgetall("done") == {"ok": "1"}
    assert sync_redis.xpending(STREAM, "workers")["pending"] == 0
    raw.close()


async def test_a_status_key_of_another_type_does_not_hold_back_its_batch(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    # given five jobs, one of whose status keys holds something that is not a record
    ids = [await enqueue(redis_client, "record", {"into": "done"}) for _ in range(5)]
    foreign = KEYS.status(ids[2])
    await redis_client.set(foreign, "another application's value")
    # when a burst worker runs them (it once crash-looped on the WRONGTYPE reply)
    assert await run_burst(testing_app, settings_for(redis_url, max_loop_crashes=3)) == 0
    # then every job ran once and was acknowledged, the others have their records, and
    # the foreign key is left exactly as it was
    assert await redis_client.hgetall("done") == {i: "1" for i in ids}
    assert await group_pending(redis_client) == 0
    assert (await record_of(redis_client, ids[0])).get("state") == "succeeded"
    assert await redis_client.get(foreign) == "another application's value"
    assert await redis_client.ttl(foreign) == -1
