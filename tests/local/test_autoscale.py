"""Local mode feeds the operator's policy: samples of a real queue in, replicas out."""

from __future__ import annotations

import redis
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.backlog import sample_queue
from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import parse_lanes
from jobqueue.local.autoscale import Autoscaler
from jobqueue.operator.limit_usage import sample_limit_usage
from jobqueue.operator.spec import parse_spec

SPEC = {
    "worker": {"image": "x", "app": "jobqueue.worker.testing:app", "concurrency": 2},
    "scaling": {
        "minReplicas": 0,
        "maxReplicas": 3,
        "lagPerReplica": 4,
        "scaleDownStabilizationSeconds": 5,
        "idleSecondsBeforeZero": 2,
    },
}
KEYS = QueueKeys()


def add_jobs(sync_redis: redis.Redis, n: int) -> None:
    for i in range(n):
        sync_redis.xadd(KEYS.stream, {"type": "record", "payload": f'{{"n": {i}}}'})


async def test_a_burst_scales_up_to_the_maximum_and_an_idle_queue_back_to_zero(
    redis_client: AsyncRedis, sync_redis: redis.Redis
) -> None:
    autoscaler = Autoscaler(parse_spec(SPEC))
    sync_redis.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)

    # Given a burst of 20 jobs (lag 20, 4 per replica), the policy wants 5: capped at 3.
    add_jobs(sync_redis, 20)
    step = autoscaler.step(await sample_queue(redis_client, KEYS), replicas=0, time_s=100.0)
    assert step.decision.replicas == 3
    assert step.decision.limited

    # When every job was delivered and acknowledged, the queue is idle.
    entries = sync_redis.xreadgroup(KEYS.group, "c1", {KEYS.stream: ">"})
    ids = [entry_id for entry_id, _ in entries[0][1]]
    sync_redis.xack(KEYS.stream, KEYS.group, *ids)
    step = autoscaler.step(await sample_queue(redis_client, KEYS), replicas=3, time_s=102.0)
    assert step.completion_rate == 10.0  # 20 jobs acknowledged over 2 s

    # Then, idle past idleSecondsBeforeZero, it scales to zero.
    sample = await sample_queue(redis_client, KEYS)
    autoscaler.step(sample, replicas=1, time_s=120.0)
    step = autoscaler.step(sample, replicas=1, time_s=130.0)
    assert step.decision.replicas == 0


async def test_limits_cap_local_scaling_while_only_limited_work_waits(
    redis_client: AsyncRedis, sync_redis: redis.Redis
) -> None:
    # Given "record" limited to 2 running at once (one replica of 2 slots),
    spec = parse_spec({**SPEC, "limits": [{"type": "record", "concurrency": 2}]})
    sync_redis.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)
    add_jobs(sync_redis, 20)
    sample = await sample_queue(redis_client, KEYS)
    usage = await sample_limit_usage(redis_client, KEYS, spec.type_limits, sample)
    assert usage is not None
    assert usage.only_limited_waiting
    # when the session steps with it, the burst gets 1 replica, not the maximum 3,
    step = Autoscaler(spec).step(sample, 0, 100.0, only_limited=usage.only_limited_waiting)
    assert (step.decision.replicas, step.decision.rate_limited) == (1, True)
    # and with unlimited work waiting too, the limits bound nothing.
    sync_redis.xadd(KEYS.stream, {"type": "noop", "payload": "{}"})
    sample = await sample_queue(redis_client, KEYS)
    usage = await sample_limit_usage(redis_client, KEYS, spec.type_limits, sample)
    assert usage is not None
    assert not usage.only_limited_waiting
    step = Autoscaler(spec).step(sample, 0, 100.0, only_limited=usage.only_limited_waiting)
    assert (step.decision.replicas, step.decision.rate_limited) == (3, False)


async def test_unlimited_work_waiting_in_any_lane_lifts_the_limits_cap(
    redis_client: AsyncRedis, sync_redis: redis.Redis
) -> None:
    # Given a queue with lanes, "record" limited, and only record jobs in the queue's stream
    lanes = parse_lanes("high:8-10,normal:1-7")
    high = KEYS.lane("high")
    for stream in (KEYS.stream, high):
        sync_redis.xgroup_create(stream, KEYS.group, id="0", mkstream=True)
    add_jobs(sync_redis, 5)
    limits = parse_spec({**SPEC, "limits": [{"type": "record", "concurrency": 2}]}).type_limits

    async def only_limited() -> bool:
        sample = await sample_queue(redis_client, KEYS, lanes=lanes)
        usage = await sample_limit_usage(redis_client, KEYS, limits, sample)
        assert usage is not None
        return usage.only_limited_waiting

    assert await only_limited()
    # When an unlimited job waits in the high lane, the limits no longer bound the replicas
    sync_redis.xadd(high, {"type": "noop", "payload": "{}", "priority": "9"})
    assert not await only_limited()
