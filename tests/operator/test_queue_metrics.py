"""What on-call reads from the operator's /metrics: the oldest waiting job, the last
sample, Redis errors, and the standard process collectors."""

from __future__ import annotations

import time

from prometheus_client import generate_latest
from redis.asyncio import Redis
from support.kube_emulator import NAMESPACE, KubeEmulator, apply, eventually, jobqueue
from support.redis_server import free_port

from jobqueue.operator.scaler import OperatorContext


def value(ctx: OperatorContext, name: str, jobqueue_name: str) -> float | None:
    labels = {"namespace": NAMESPACE, "jobqueue": jobqueue_name}
    return ctx.metrics.registry.get_sample_value(name, labels)


async def test_the_oldest_waiting_job_and_the_last_sample_are_exported(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    # Given a queue whose oldest job was added two minutes ago and never delivered
    seconds, _ = await redis_client.time()
    old_id = f"{(seconds - 120) * 1000}-0"
    await redis_client.xadd("aged:work", {"type": "noop", "payload": "{}"}, id=old_id)
    await redis_client.xadd("aged:work", {"type": "noop", "payload": "{}"})
    before_s = time.time()
    # (the emulator runs no pods: nothing delivers it, so it keeps waiting)
    await apply(kube, jobqueue("aged", redis_url))

    def sampled() -> float | None:
        return value(operator, "jobqueue_operator_last_sample_timestamp_seconds", "aged")

    last = await eventually(sampled, what="a sample")
    age = value(operator, "jobqueue_queue_oldest_job_age_seconds", "aged")

    assert last >= before_s - 1
    assert age is not None
    assert 119 <= age <= 120 + (time.time() - before_s) + 5
    text = generate_latest(operator.metrics.registry).decode()
    for family in ("process_cpu_seconds_total", "python_info", "jobqueue_redis_errors_total"):
        assert family in text


async def test_an_unreachable_redis_counts_connection_errors_and_stops_the_samples(
    kube: KubeEmulator, operator: OperatorContext
) -> None:
    errors = {"component": "operator", "kind": "connection"}
    before = operator.metrics.registry.get_sample_value("jobqueue_redis_errors_total", errors)
    await apply(kube, jobqueue("offline", f"redis://127.0.0.1:{free_port()}/0"))

    def counted() -> bool:
        now = operator.metrics.registry.get_sample_value("jobqueue_redis_errors_total", errors)
        return (now or 0) > (before or 0)

    await eventually(counted, what="a counted connection error")
    assert value(operator, "jobqueue_operator_last_sample_timestamp_seconds", "offline") is None
