"""Every outcome script completes or changes nothing when a key holds another type.

A job's status key holding another application's value once made ``ACK_RETRY`` and
``ACK_DEAD`` fail with WRONGTYPE after their ``XACK`` and ``XADD`` had run (Lua scripts
are not rolled back): the entry acknowledged, its retry or dead letter half written,
"outcome not recorded" in the log. Now a foreign status key is left alone and the job
still moves; a foreign queue key (the delayed set, the dead-letter stream) fails the
script before its first write.
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ResponseError
from worker.conftest import DEAD, GROUP, STREAM, enqueue, group_pending, run_burst, settings_for

from jobqueue.core.client import AsyncClient
from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import decode
from jobqueue.worker.app import App
from jobqueue.worker.inflight import Delivery
from jobqueue.worker.metrics import WorkerMetrics
from jobqueue.worker.outcomes import Outcomes
from jobqueue.worker.promote import Promoter
from jobqueue.worker.testing import app as testing_app

KEYS = QueueKeys()
FOREIGN = "another application's value"


async def delivered(client: AsyncRedis, job_type: str = "fail") -> tuple[str, Delivery]:
    """One job enqueued and read by consumer ``c``; its id and its delivery."""
    job_id = await enqueue(client, job_type, {})
    await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    reply = await client.xreadgroup(GROUP, "c", {STREAM: ">"}, count=1)
    entry_id, fields = reply[0][1][0]
    return job_id, Delivery(entry_id, fields, job=decode(entry_id, fields))


def outcomes_of(client: AsyncRedis) -> Outcomes:
    return Outcomes(client, KEYS, 3600, WorkerMetrics(None), lambda ids: None)


async def assert_foreign_untouched(client: AsyncRedis, key: str) -> None:
    assert await client.get(key) == FOREIGN
    assert await client.ttl(key) == -1


async def test_a_retry_moves_the_job_and_leaves_a_foreign_status_key_alone(
    redis_client: AsyncRedis,
) -> None:
    # given a delivered job whose status key holds another type
    job_id, delivery = await delivered(redis_client)
    await redis_client.set(KEYS.status(job_id), FOREIGN)
    # when its retry is recorded (it once failed here, after the XACK had run)
    await outcomes_of(redis_client).retry(delivery, "boom", 60, 0.1)
    # then the entry is acknowledged, the retry waits in the delayed set, and the
    # foreign key is as it was
    assert await group_pending(redis_client) == 0
    assert await redis_client.zscore(KEYS.delayed, job_id) is not None
    assert await redis_client.hexists(KEYS.delayed_jobs, job_id)
    await assert_foreign_untouched(redis_client, KEYS.status(job_id))


async def test_a_dead_letter_is_written_whole_beside_a_foreign_status_key(
    redis_client: AsyncRedis,
) -> None:
    job_id, delivery = await delivered(redis_client)
    await redis_client.set(KEYS.status(job_id), FOREIGN)
    await outcomes_of(redis_client).dead(delivery, "fatal", "boom")
    assert await group_pending(redis_client) == 0
    [(_, letter)] = await redis_client.xrange(DEAD)
    assert letter["original_id"] == job_id
    await assert_foreign_untouched(redis_client, KEYS.status(job_id))


async def test_a_cancellation_is_acknowledged_beside_a_foreign_status_key(
    redis_client: AsyncRedis,
) -> None:
    job_id, delivery = await delivered(redis_client)
    await redis_client.set(KEYS.status(job_id), FOREIGN)
    await outcomes_of(redis_client).cancelled(delivery, 0.1)
    assert await group_pending(redis_client) == 0
    await assert_foreign_untouched(redis_client, KEYS.status(job_id))


@pytest.mark.parametrize(
    ("outcome", "foreign_key"),
    [("retry", KEYS.delayed), ("retry", KEYS.delayed_jobs), ("dead", DEAD)],
)
async def test_a_foreign_queue_key_fails_the_outcome_before_anything_changes(
    redis_client: AsyncRedis, outcome: str, foreign_key: str
) -> None:
    # given a delivered job, and one of the queue's own keys holding another type
    job_id, delivery = await delivered(redis_client)
    await redis_client.set(foreign_key, FOREIGN)
    outcomes = outcomes_of(redis_client)
    # when its outcome is recorded, then the script fails with a clear error ...
    record = (
        outcomes.retry(delivery, "boom", 60, 0.1)
        if outcome == "retry"
        else outcomes.dead(delivery, "fatal", "boom")
    )
    with pytest.raises(ResponseError, match=f"WRONGTYPE {foreign_key} holds another type"):
        await record
    # ... having changed nothing: the entry is still pending, for another try
    assert await group_pending(redis_client) == 1
    assert await redis_client.get(foreign_key) == FOREIGN
    assert await redis_client.exists(KEYS.status(job_id)) == 0


async def test_promotion_moves_a_due_job_and_leaves_a_foreign_status_key_alone(
    redis_client: AsyncRedis,
) -> None:
    # given a due retry whose status key holds another type, and a due one without
    await redis_client.zadd(KEYS.delayed, {"a": 1, "b": 2})
    for job_id in ("a", "b"):
        fields = f'{{"id": "{job_id}", "type": "noop", "payload": "{{}}", "attempts": "1"}}'
        await redis_client.hset(KEYS.delayed_jobs, job_id, fields)
    await redis_client.set(KEYS.status("a"), FOREIGN)
    # when promotion runs, then both are back on the stream
    assert await Promoter(redis_client, KEYS, 3600).promote_due() == 2
    ids = [fields["id"] for _, fields in await redis_client.xrange(STREAM)]
    assert ids == ["a", "b"]
    assert await redis_client.zcard(KEYS.delayed) == 0
    await assert_foreign_untouched(redis_client, KEYS.status("a"))
    assert await redis_client.hget(KEYS.status("b"), "state") == "queued"


async def test_cancel_and_replay_change_nothing_half_way_on_a_foreign_status_key(
    redis_client: AsyncRedis, redis_url: str
) -> None:
    client = AsyncClient(redis_client)
    # given a dead letter whose status key holds another type
    job_id = await enqueue(redis_client, "hopeless", {})
    assert await run_burst(App(), settings_for(redis_url)) == 0  # no handler: dead
    [(dead_entry_id, _)] = await redis_client.xrange(DEAD)
    await redis_client.delete(KEYS.status(job_id))
    await redis_client.set(KEYS.status(job_id), FOREIGN)
    # when it is replayed, then it is back on the stream, out of the dead letters
    replayed = await client.replay(dead_entry_id)
    assert replayed is not None
    assert replayed.job_id == job_id
    assert await redis_client.xlen(DEAD) == 0
    await assert_foreign_untouched(redis_client, KEYS.status(job_id))
    # given a delayed job whose status key was overwritten with another type
    delayed = await client.enqueue("noop", {}, delay_s=3600)
    await redis_client.delete(KEYS.status(delayed.job_id))
    await redis_client.set(KEYS.status(delayed.job_id), FOREIGN)
    # when it is cancelled, then it is not found as a job of ours and stays delayed
    outcome = await client.cancel(delayed.job_id)
    assert outcome.answer == "not_found"
    assert await redis_client.zscore(KEYS.delayed, delayed.job_id) is not None
    await assert_foreign_untouched(redis_client, KEYS.status(delayed.job_id))


async def test_a_worker_retries_and_dead_letters_jobs_with_foreign_status_keys(
    redis_client: AsyncRedis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # given a job that fails once and one that always fails, both with foreign keys
    flaky = await enqueue(redis_client, "fail", {"times": 1, "into": "done"})
    hopeless = await enqueue(redis_client, "fail", {})
    for job_id in (flaky, hopeless):
        await redis_client.set(KEYS.status(job_id), FOREIGN)
    # when a burst worker runs them
    settings = settings_for(redis_url, max_attempts=2, max_loop_crashes=3)
    assert await run_burst(testing_app, settings) == 0
    # then the flaky one succeeded on its retry, the hopeless one is a dead letter after
    # two attempts, nothing is pending, and neither foreign key changed
    assert await redis_client.hgetall("done") == {flaky: "1"}
    [(_, letter)] = await redis_client.xrange(DEAD)
    assert (letter["original_id"], letter["attempts"]) == (hopeless, "2")
    assert await group_pending(redis_client) == 0
    for job_id in (flaky, hopeless):
        await assert_foreign_untouched(redis_client, KEYS.status(job_id))
    # and every outcome was recorded whole (it once logged "outcome not recorded")
    assert not [r for r in caplog.records if "not recorded" in r.getMessage()]


@pytest.mark.parametrize("which", ["started", "solo", "crashes", "health"])
async def test_a_foreign_ledger_or_probe_key_is_named_and_jobs_still_run(
    redis_client: AsyncRedis, redis_url: str, caplog: pytest.LogCaptureFixture, which: str
) -> None:
    # given the crash ledger's or the write probe's key held as a string by another
    # application (the ledger's crashed the read loop at every start: no job ran)
    key = getattr(KEYS, which)
    await redis_client.set(key, FOREIGN)
    ids = [await enqueue(redis_client, "record", {"into": "done"}) for _ in range(5)]
    # when a burst worker runs,
    settings = settings_for(redis_url, max_loop_crashes=2)
    assert await run_burst(testing_app, settings) == 0
    # then every job ran once, nothing is pending, the key is as it was and the log says so
    assert await redis_client.hgetall("done") == {job_id: "1" for job_id in ids}
    assert await group_pending(redis_client) == 0
    await assert_foreign_untouched(redis_client, key)
    assert any(key in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    assert not [r for r in caplog.records if "crashed" in r.getMessage()]
