"""At shutdown, successes still queued in memory are acknowledged, not run again."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis as AsyncRedis
from worker.conftest import record_of

from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import Job, decode
from jobqueue.worker.inflight import Delivery
from jobqueue.worker.metrics import WorkerMetrics
from jobqueue.worker.outcomes import Outcomes

KEYS = QueueKeys()


async def test_queued_successes_are_acknowledged_by_the_final_flush(
    redis_client: AsyncRedis,
) -> None:
    # Given two jobs delivered to this consumer whose handlers succeeded, and no acks
    # loop left running to send them (the worker is shutting down)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)
    for _ in range(2):
        await redis_client.xadd(KEYS.stream, Job(type="noop", payload={}).fields())
    [[_, entries]] = await redis_client.xreadgroup(KEYS.group, "w1", {KEYS.stream: ">"})
    released: list[str] = []
    outcomes = Outcomes(redis_client, KEYS, 60, WorkerMetrics(CollectorRegistry()), released.extend)
    deliveries = [
        Delivery(entry_id, fields, decode(entry_id, fields)) for entry_id, fields in entries
    ]
    outcomes.mark_running(deliveries)
    for delivery in deliveries:
        outcomes.succeeded(delivery, 0.01)

    # When the worker's last step before closing runs
    await outcomes.flush_left(timeout_s=5)

    # Then nothing is left pending, each job is recorded as succeeded, slots are freed
    assert (await redis_client.xpending(KEYS.stream, KEYS.group))["pending"] == 0
    for delivery in deliveries:
        assert delivery.job is not None
        state = (await record_of(redis_client, delivery.job.id)).get("state")
        assert state == "succeeded"
    assert sorted(released) == sorted(d.entry_id for d in deliveries)
