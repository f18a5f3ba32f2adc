"""The success flush: one script call acknowledges a batch and writes its records.

Driven through `Outcomes` (take_flush / settle, as the reader and the acks loop do)
against a real Redis, with the edge cases a multi-id ``XACK`` must get right.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis as AsyncRedis
from worker.conftest import record_of

from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import Job, decode
from jobqueue.worker import scripts
from jobqueue.worker.inflight import Delivery
from jobqueue.worker.metrics import WorkerMetrics
from jobqueue.worker.outcomes import Flush, Outcomes

KEYS = QueueKeys()


async def delivered(redis: AsyncRedis, count: int) -> list[Delivery]:
    """``count`` noop jobs delivered to consumer w1."""
    await redis.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)
    for _ in range(count):
        await redis.xadd(KEYS.stream, Job(type="noop", payload={}).fields())  # type: ignore[arg-type]
    [[_, entries]] = await redis.xreadgroup(KEYS.group, "w1", {KEYS.stream: ">"})
    return [Delivery(entry_id, fields, decode(entry_id, fields)) for entry_id, fields in entries]


def outcomes_for(redis: AsyncRedis, released: list[str]) -> Outcomes:
    return Outcomes(redis, KEYS, 60, WorkerMetrics(CollectorRegistry()), released.extend)


async def run_flush(redis: AsyncRedis, outcomes: Outcomes) -> int:
    flush = outcomes.take_flush()
    assert flush is not None
    acked = await redis.eval(scripts.FLUSH, len(flush.keys), *flush.keys, *flush.args)  # type: ignore[misc]
    outcomes.settle(flush, acked)
    return int(acked)


async def record(redis: AsyncRedis, delivery: Delivery) -> dict[str, str]:
    assert delivery.job is not None
    return await record_of(redis, delivery.job.id)


async def test_jobs_started_and_finished_since_the_last_flush_get_one_complete_record(
    redis_client: AsyncRedis,
) -> None:
    deliveries = await delivered(redis_client, 3)
    released: list[str] = []
    outcomes = outcomes_for(redis_client, released)
    outcomes.mark_running(deliveries)
    for d in deliveries:
        outcomes.succeeded(d, 0.001)

    assert await run_flush(redis_client, outcomes) == 3

    assert (await redis_client.xpending(KEYS.stream, KEYS.group))["pending"] == 0
    for d in deliveries:
        rec = await record(redis_client, d)
        assert rec["state"] == "succeeded"
        assert (rec["attempts"], rec["entry_id"], rec["type"]) == ("1", d.entry_id, "noop")
        assert rec["started_at"]
        assert rec["finished_at"]
    assert sorted(released) == sorted(d.entry_id for d in deliveries)


async def test_a_flush_repeated_after_a_lost_reply_changes_nothing(
    redis_client: AsyncRedis,
) -> None:
    deliveries = await delivered(redis_client, 2)
    outcomes = outcomes_for(redis_client, [])
    outcomes.mark_running(deliveries)
    for d in deliveries:
        outcomes.succeeded(d, 0.001)
    flush = outcomes.take_flush()
    assert flush is not None
    await redis_client.eval(scripts.FLUSH, len(flush.keys), *flush.keys, *flush.args)  # type: ignore[misc]
    before = [await record(redis_client, d) for d in deliveries]
    # the reply was lost: the flush goes back to the queue and is sent again, later
    outcomes.put_back(flush)
    # a tripwire in place of the first job's success record: a second write would show
    first_id = deliveries[0].job.id  # type: ignore[union-attr]
    done = KEYS.done(first_id)
    assert done is not None
    assert await redis_client.hexists(done, first_id)
    await redis_client.hset(done, first_id, "tripwire")

    assert await run_flush(redis_client, outcomes) == 0

    assert await redis_client.hget(done, first_id) == "tripwire"
    assert await record(redis_client, deliveries[1]) == before[1]


async def test_an_entry_finished_elsewhere_keeps_its_record_while_the_rest_of_the_batch_lands(
    redis_client: AsyncRedis,
) -> None:
    # given three running jobs whose running marks already landed
    deliveries = await delivered(redis_client, 3)
    outcomes = outcomes_for(redis_client, [])
    outcomes.mark_running(deliveries)
    await run_flush(redis_client, outcomes)
    # and the first was reclaimed by another worker, which dead-lettered it
    stolen = deliveries[0]
    await redis_client.xack(KEYS.stream, KEYS.group, stolen.entry_id)
    await redis_client.hset(KEYS.status(stolen.job.id), "state", "dead")  # type: ignore[union-attr]
    # when all three succeed here and are flushed
    for d in deliveries:
        outcomes.succeeded(d, 0.001)
    assert await run_flush(redis_client, outcomes) == 2
    # then the stolen one keeps the outcome recorded elsewhere, the others succeeded
    assert (await record(redis_client, stolen))["state"] == "dead"
    for d in deliveries[1:]:
        assert (await record(redis_client, d))["state"] == "succeeded"
    assert (await redis_client.xpending(KEYS.stream, KEYS.group))["pending"] == 0


async def test_a_short_success_is_one_field_of_a_shared_hash_and_leaves_queued(
    redis_client: AsyncRedis,
) -> None:
    # given two jobs the client listed as queued, read, run and finished in one flush
    deliveries = await delivered(redis_client, 2)
    ids = [d.job.id for d in deliveries if d.job is not None]
    await redis_client.hset(KEYS.queued, mapping={i: "listed" for i in ids})
    outcomes = outcomes_for(redis_client, [])
    outcomes.mark_running(deliveries)
    for d in deliveries:
        outcomes.succeeded(d, 0.001)

    assert await run_flush(redis_client, outcomes) == 2

    # then no job has a key of its own: each is a field of its success hash, with a TTL
    done = KEYS.done(ids[0])
    assert done is not None
    assert await redis_client.exists(*(KEYS.status(i) for i in ids)) == 0
    assert sorted(await redis_client.hkeys(done)) == sorted(ids)
    assert 0 < await redis_client.ttl(done) <= 60
    assert await redis_client.hlen(KEYS.queued) == 0
    record = await record_of(redis_client, ids[0])
    assert record["state"] == "succeeded"
    assert (record["type"], record["attempts"]) == ("noop", "1")
    assert record["entry_id"] == deliveries[0].entry_id
    assert record["finished_at"] == record["started_at"]


async def test_a_job_id_that_is_not_a_ulid_gets_its_own_record(
    redis_client: AsyncRedis,
) -> None:
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)
    await redis_client.xadd(KEYS.stream, {"id": "order-7", "type": "noop", "payload": "{}"})
    [[_, entries]] = await redis_client.xreadgroup(KEYS.group, "w1", {KEYS.stream: ">"})
    deliveries = [Delivery(i, f, decode(i, f)) for i, f in entries]
    outcomes = outcomes_for(redis_client, [])
    outcomes.mark_running(deliveries)
    outcomes.succeeded(deliveries[0], 0.001)

    assert await run_flush(redis_client, outcomes) == 1

    assert await redis_client.hget(KEYS.status("order-7"), "state") == "succeeded"
    assert 0 < await redis_client.ttl(KEYS.status("order-7")) <= 60


async def test_a_success_hash_of_another_type_leaves_each_job_its_own_record(
    redis_client: AsyncRedis,
) -> None:
    deliveries = await delivered(redis_client, 2)
    ids = [d.job.id for d in deliveries if d.job is not None]
    done = KEYS.done(ids[0])
    assert done is not None
    await redis_client.set(done, "another application's value")
    outcomes = outcomes_for(redis_client, [])
    outcomes.mark_running(deliveries)
    for d in deliveries:
        outcomes.succeeded(d, 0.001)

    assert await run_flush(redis_client, outcomes) == 2

    assert await redis_client.get(done) == "another application's value"
    for job_id in ids:
        assert await redis_client.hget(KEYS.status(job_id), "state") == "succeeded"


async def test_a_success_record_keeps_a_type_that_needs_json_escaping(
    redis_client: AsyncRedis,
) -> None:
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)
    odd = 'say "hi"\\ to\tÿou'
    await redis_client.xadd(KEYS.stream, Job(type=odd, payload={}).fields())  # type: ignore[arg-type]
    [[_, entries]] = await redis_client.xreadgroup(KEYS.group, "w1", {KEYS.stream: ">"})
    deliveries = [Delivery(i, f, decode(i, f)) for i, f in entries]
    outcomes = outcomes_for(redis_client, [])
    outcomes.mark_running(deliveries)
    outcomes.succeeded(deliveries[0], 0.001)

    assert await run_flush(redis_client, outcomes) == 1

    assert (await record(redis_client, deliveries[0]))["type"] == odd


async def test_a_job_a_dead_worker_left_running_reads_as_succeeded_once_another_finishes_it(
    redis_client: AsyncRedis,
) -> None:
    # given jobs a worker marked running and then died holding
    deliveries = await delivered(redis_client, 2)
    dead = outcomes_for(redis_client, [])
    dead.mark_running(deliveries)
    await run_flush(redis_client, dead)
    # when another worker takes them over and they start and finish within one flush
    taker = outcomes_for(redis_client, [])
    taker.mark_running(deliveries)
    for d in deliveries:
        taker.succeeded(d, 0.001)
    assert await run_flush(redis_client, taker) == 2

    # then each reads as succeeded wherever its record lives: the success went to the
    # shared success hash and the job's own hash still says running (nothing on the
    # hot path rewrites it), so a raw HGET of ``state`` is not the job's state.
    for d in deliveries:
        assert d.job is not None
        assert await redis_client.hget(KEYS.status(d.job.id), "state") == "running"
        assert (await record(redis_client, d))["state"] == "succeeded"


async def land(redis: AsyncRedis, outcomes: Outcomes, flush: Flush) -> None:
    acked = await redis.eval(scripts.FLUSH, len(flush.keys), *flush.keys, *flush.args)  # type: ignore[misc]
    outcomes.settle(flush, acked)


async def test_a_flush_built_while_another_is_on_the_wire_is_sent_as_built(
    redis_client: AsyncRedis,
) -> None:
    deliveries = await delivered(redis_client, 2)
    outcomes = outcomes_for(redis_client, [])
    outcomes.mark_running(deliveries)
    on_wire = outcomes.take_flush()
    assert on_wire is not None
    for d in deliveries:
        outcomes.succeeded(d, 0.001)
    outcomes.prepare()  # what the acks loop does while a flush is on the wire
    built = outcomes.take_flush()
    assert built is None  # one flush on the wire at a time
    await land(redis_client, outcomes, on_wire)

    taken = outcomes.take_flush()

    assert taken is not None
    assert [s.entry_id for s in taken.batch] == [d.entry_id for d in deliveries]
    assert outcomes.take_flush() is None
    await land(redis_client, outcomes, taken)
    for d in deliveries:
        assert (await record(redis_client, d))["state"] == "succeeded"


async def test_a_success_queued_after_the_flush_was_built_goes_in_it_too(
    redis_client: AsyncRedis,
) -> None:
    deliveries = await delivered(redis_client, 3)
    released: list[str] = []
    outcomes = outcomes_for(redis_client, released)
    outcomes.mark_running(deliveries[:1])
    on_wire = outcomes.take_flush()
    assert on_wire is not None
    outcomes.mark_running(deliveries[1:])
    outcomes.succeeded(deliveries[0], 0.001)
    outcomes.prepare()
    outcomes.succeeded(deliveries[1], 0.001)  # after the build
    outcomes.succeeded(deliveries[2], 0.001)
    await land(redis_client, outcomes, on_wire)

    assert await run_flush(redis_client, outcomes) == 3

    assert sorted(released) == sorted(d.entry_id for d in deliveries)
    for d in deliveries:
        rec = await record(redis_client, d)
        assert (rec["state"], rec["attempts"]) == ("succeeded", "1")
