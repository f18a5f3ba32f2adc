"""The Python client against a real Redis: wire format, status records, delays,
idempotency, batches, cancellation and dead-letter replay."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.client import JOBS_PER_SCRIPT_CALL, AsyncClient, Client, NewJob
from jobqueue.core.keys import QueueKeys
from jobqueue.core.settings import QueueSettings
from jobqueue.core.wire import dead_letter_fields, decode, new_job_id

KEYS = QueueKeys()


@pytest.fixture
async def client(redis_client: AsyncRedis) -> AsyncClient:
    return AsyncClient(redis_client, QueueSettings(status_ttl_s=3600), idempotency_ttl_s=600)


async def test_enqueue_writes_the_spec_wire_format_and_lists_the_job_as_queued(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    result = await client.enqueue("email", {"to": "a@example.com", "template": "welcome"})

    [(entry_id, fields)] = await redis_client.xrange(KEYS.stream)
    assert entry_id == result.entry_id
    assert set(fields) == {"id", "type", "payload", "priority", "enqueued_at", "attempts"}
    job = decode(entry_id, fields)
    assert (job.id, job.type, job.priority, job.attempts) == (result.job_id, "email", 5, 0)
    assert job.payload == {"to": "a@example.com", "template": "welcome"}
    # A job waiting in the stream has no record of its own, only its entry id in the
    # queue's `queued` hash; the client derives the rest from the entry.
    assert await redis_client.exists(KEYS.status(result.job_id)) == 0
    assert await redis_client.hgetall(KEYS.queued) == {result.job_id: entry_id}
    info = await client.get(result.job_id)
    assert info is not None
    assert (info.state, info.type, info.attempts, info.entry_id) == ("queued", "email", 0, entry_id)
    assert info.enqueued_at == fields["enqueued_at"]


async def test_a_delayed_job_waits_in_the_delayed_set_not_the_stream(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    before_ms = time.time() * 1000
    result = await client.enqueue("report", {"report_id": 7}, delay_s=30)

    assert result.state == "delayed"
    assert result.entry_id is None
    assert await redis_client.xlen(KEYS.stream) == 0
    due_ms = await redis_client.zscore(KEYS.delayed, result.job_id)
    assert due_ms is not None
    assert due_ms >= before_ms + 30_000
    fields = orjson.loads(await redis_client.hget(KEYS.delayed_jobs, result.job_id))
    assert decode("0-1", fields).payload == {"report_id": 7}
    info = await client.get(result.job_id)
    assert info is not None
    assert info.state == "delayed"
    assert info.run_at is not None


async def test_a_delayed_job_keeps_its_record_for_the_whole_wait(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    result = await client.enqueue("report", {}, delay_s=30 * 24 * 3600)

    ttl_s = await redis_client.ttl(KEYS.status(result.job_id))
    assert 30 * 24 * 3600 < ttl_s <= 30 * 24 * 3600 + 3600 + 1


async def test_run_at_in_the_past_is_enqueued_at_once(client: AsyncClient) -> None:
    result = await client.enqueue("report", {}, run_at=datetime.now(UTC) - timedelta(hours=1))

    assert result.state == "queued"
    assert result.entry_id is not None


async def test_an_idempotent_repeat_enqueues_once_and_answers_the_first_job(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    first = await client.enqueue("email", {"to": "x"}, idempotency_key="order-42")
    again = await client.enqueue("email", {"to": "x"}, idempotency_key="order-42")
    [in_batch] = await client.enqueue_many([NewJob("email", {}, idempotency_key="order-42")])

    assert again.duplicate
    assert in_batch.duplicate
    assert (again.job_id, again.entry_id) == (first.job_id, first.entry_id)
    assert (again.state, in_batch.state) == ("queued", "queued")
    assert in_batch.job_id == first.job_id
    assert await redis_client.xlen(KEYS.stream) == 1
    assert 0 < await redis_client.ttl(KEYS.idempotency("order-42")) <= 600


async def test_a_batch_with_one_bad_job_enqueues_nothing(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    jobs = [NewJob("email", {}), NewJob("email", {}, priority=11)]

    with pytest.raises(ValueError, match="priority"):
        await client.enqueue_many(jobs)
    assert await redis_client.xlen(KEYS.stream) == 0


async def test_a_batch_larger_than_one_script_call_keeps_its_order(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    count = 2 * JOBS_PER_SCRIPT_CALL + 3
    jobs = [NewJob("report", {"report_id": n}) for n in range(count)]

    results = await client.enqueue_many(jobs)

    entries = await redis_client.xrange(KEYS.stream)
    assert [e[0] for e in entries] == [r.entry_id for r in results]
    assert [orjson.loads(f["payload"])["report_id"] for _, f in entries] == list(range(count))


async def test_cancel_of_a_delayed_job_removes_it(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    job = await client.enqueue("report", {}, delay_s=60)

    outcome = await client.cancel(job.job_id)

    assert (outcome.answer, outcome.state) == ("cancelled", "cancelled")
    assert await redis_client.zcard(KEYS.delayed) == 0
    assert await redis_client.hlen(KEYS.delayed_jobs) == 0


async def test_cancel_of_an_undelivered_job_deletes_its_entry(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    job = await client.enqueue("report", {})

    outcome = await client.cancel(job.job_id)

    assert outcome.answer == "cancelled"
    assert await redis_client.xlen(KEYS.stream) == 0
    info = await client.get(job.job_id)
    assert info is not None
    # The entry is gone: the record kept what only the entry held.
    assert (info.state, info.type, info.attempts) == ("cancelled", "report", 0)
    assert info.enqueued_at is not None
    assert 0 < await redis_client.ttl(KEYS.status(job.job_id)) <= 3600


async def test_a_queued_record_whose_entry_is_gone_is_unknown(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    job = await client.enqueue("report", {})
    assert job.entry_id is not None
    await redis_client.xdel(KEYS.stream, job.entry_id)  # by hand, not through cancel

    assert await client.get(job.job_id) is None


async def test_cancel_of_a_delivered_job_asks_its_worker_to_stop(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    job = await client.enqueue("report", {})
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    await redis_client.xreadgroup(KEYS.group, "pod-a", {KEYS.stream: ">"}, count=1)

    outcome = await client.cancel(job.job_id)

    assert outcome.answer == "cancel_requested"
    assert await redis_client.xlen(KEYS.stream) == 1
    assert await redis_client.hget(KEYS.status(job.job_id), "cancel_requested") == "1"


async def test_cancel_of_a_finished_or_unknown_job_changes_nothing(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    job = await client.enqueue("report", {})
    await redis_client.hset(KEYS.status(job.job_id), "state", "succeeded")

    finished = await client.cancel(job.job_id)
    unknown = await client.cancel("01NOSUCHJOB")

    assert (finished.answer, finished.state) == ("not_cancellable", "succeeded")
    assert unknown.answer == "not_found"
    assert await redis_client.xlen(KEYS.stream) == 1


async def test_a_short_job_succeeded_in_its_shared_hash_is_read_and_not_cancellable(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    # given a job whose success a worker wrote into its `done` hash (scripts.FLUSH)
    job = await client.enqueue("report", {})
    assert job.entry_id is not None
    done = KEYS.done(job.job_id)
    assert done is not None
    success = f'["2026-01-01T00:00:01.000Z","1","{job.entry_id}","report","2026-01-01T00:00:00Z"]'
    await redis_client.hset(done, job.job_id, success)
    await redis_client.hdel(KEYS.queued, job.job_id)
    await redis_client.xdel(KEYS.stream, job.entry_id)

    info = await client.get(job.job_id)
    outcome = await client.cancel(job.job_id)

    assert info is not None
    assert (info.state, info.type, info.attempts) == ("succeeded", "report", 1)
    assert info.finished_at == "2026-01-01T00:00:01.000Z"
    assert (outcome.answer, outcome.state) == ("not_cancellable", "succeeded")


async def _dead_letter(redis_client: AsyncRedis, client: AsyncClient) -> tuple[str, str]:
    """Enqueue a job, take it off the stream and dead-letter it as a worker would."""
    job = await client.enqueue("webhook", {"url": "https://example.com"}, extra={"trace": "t1"})
    [(entry_id, fields)] = await redis_client.xrange(KEYS.stream)
    await redis_client.xdel(KEYS.stream, entry_id)
    dead = dead_letter_fields(KEYS.stream, entry_id, fields, "boom", attempts=3)
    dead_id = await redis_client.xadd(KEYS.dead, dead)
    await redis_client.hset(KEYS.status(job.job_id), mapping={"state": "dead", "attempts": "3"})
    return job.job_id, dead_id


async def test_replay_puts_a_dead_letter_back_with_attempts_reset(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    job_id, dead_id = await _dead_letter(redis_client, client)

    replayed = await client.replay(dead_id)
    twice = await client.replay(dead_id)

    assert replayed is not None
    assert replayed.job_id == job_id
    assert twice is None
    assert await redis_client.xlen(KEYS.dead) == 0
    [(entry_id, fields)] = await redis_client.xrange(KEYS.stream)
    job = decode(entry_id, fields)
    assert (job.id, job.attempts, job.extra) == (job_id, 0, {"trace": "t1"})
    info = await client.get(job_id)
    assert info is not None
    assert (info.state, info.attempts, info.entry_id) == ("queued", 0, entry_id)


async def test_dead_letters_are_paged_and_deleted_by_entry_id(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    ids = [await redis_client.xadd(KEYS.dead, {"original_id": str(n)}) for n in range(5)]

    first = await client.dead_letters(limit=2)
    second = await client.dead_letters(after=first.next_after, limit=3)
    deleted = await client.delete_dead(ids[0])
    deleted_again = await client.delete_dead(ids[0])

    assert [d.entry_id for d in first.items] == ids[:2]
    assert [d.entry_id for d in second.items] == ids[2:]
    assert second.next_after is None
    assert (deleted, deleted_again) == (True, False)
    assert await client.dead_letter("not-an-id") is None
    with pytest.raises(ValueError, match="entry id"):
        await client.dead_letters(after="bad")


async def test_stats_count_the_stream_the_delayed_set_and_dead_letters(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    await client.enqueue_many([NewJob("report", {}), NewJob("report", {}, delay_s=60)])
    await redis_client.xadd(KEYS.dead, {"original_id": "x"})

    sample = await client.stats()

    assert (sample.length, sample.lag, sample.delayed, sample.dead_letters) == (1, 1, 1, 1)


def test_the_sync_client_does_the_same_against_redis(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    with Client.from_url(redis_url) as client:
        job = client.enqueue("email", {"to": "s@example.com"}, priority=9)
        info = client.get(job.job_id)
        outcome = client.cancel(job.job_id)

    assert info is not None
    assert (info.state, info.type) == ("queued", "email")
    assert outcome.answer == "cancelled"
    assert sync_redis.xlen(KEYS.stream) == 0


async def test_a_job_id_sent_again_after_its_short_run_succeeded_is_a_duplicate(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    # given a job the caller named, which a worker ran and recorded in its `done` hash
    job_id = new_job_id()
    first = await client.enqueue("report", {}, job_id=job_id)
    assert first.entry_id is not None
    done = KEYS.done(job_id)
    assert done is not None
    success = f'["2026-01-01T00:00:01.000Z","1","{first.entry_id}","report","2026"]'
    await redis_client.hset(done, job_id, success)
    await redis_client.hdel(KEYS.queued, job_id)
    await redis_client.xdel(KEYS.stream, first.entry_id)

    # when the caller sends it again (it never saw the first answer)
    again = await client.enqueue("report", {}, job_id=job_id)

    # then nothing is enqueued twice: the answer is the first job, succeeded
    assert (again.duplicate, again.job_id, again.state) == (True, job_id, "succeeded")
    assert await redis_client.xlen(KEYS.stream) == 0
