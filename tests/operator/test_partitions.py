"""A partitioned JobQueue: the operator sums the backlog over the partitions, shows each
in status and metrics, and never lets a change of the count strand jobs."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from support.kube_emulator import (
    DEPLOYMENTS,
    JOBQUEUES,
    NAMESPACE,
    KubeEmulator,
    apply,
    eventually,
    jobqueue,
)

from jobqueue.core.client import AsyncClient, NewJob
from jobqueue.core.settings import QueueSettings
from jobqueue.operator.scaler import OperatorContext


def _queue(name: str, redis_url: str, partitions: int) -> dict[str, Any]:
    body = jobqueue(name, redis_url, partitions=partitions)
    del body["spec"]["deadLetterStream"]  # each partition keeps its own
    return body


def _env(kube: KubeEmulator, name: str) -> dict[str, str]:
    deployment = kube.get(DEPLOYMENTS, NAMESPACE, f"{name}-worker")
    if deployment is None:
        return {}
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def _status(kube: KubeEmulator, name: str) -> dict[str, Any]:
    return dict((kube.get(JOBQUEUES, NAMESPACE, name) or {}).get("status", {}))


async def test_the_backlog_of_every_partition_is_summed_and_shown_per_partition(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    await apply(kube, _queue("parts", redis_url, 3))
    await eventually(lambda: _env(kube, "parts").get("JOBQUEUE_PARTITIONS") == "3", what="env")
    settings = QueueSettings(redis_url=redis_url, stream="parts:work", partitions=3)
    client = AsyncClient(redis_client, settings)
    await client.enqueue_many([NewJob("noop", {}) for _ in range(30)])
    per_partition = [s.length for s in await client.partition_stats()]

    status = await eventually(
        lambda: _status(kube, "parts").get("lag") == 30 and _status(kube, "parts"),
        what="status with the lag of all partitions",
    )

    assert [p["lag"] for p in status["partitions"]] == per_partition
    assert [p["stream"] for p in status["partitions"]] == [
        k.stream for k in settings.partition_keys
    ]
    assert status["partitionCount"] == 3
    assert status["desiredReplicas"] == 3  # lagPerReplica 10
    for keys in settings.partition_keys:  # every partition has the workers' group
        assert [g["name"] for g in await redis_client.xinfo_groups(keys.stream)] == ["workers"]
    labels = {"namespace": NAMESPACE, "jobqueue": "parts", "partition": "2"}
    lag = operator.metrics.registry.get_sample_value("jobqueue_queue_partition_lag_jobs", labels)
    assert lag == per_partition[2]


async def test_a_change_of_the_partition_count_is_refused_and_the_workers_keep_theirs(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str
) -> None:
    # (the API server refuses it by the CRD's rule; the emulator does not, the operator must)
    await apply(kube, _queue("fixed", redis_url, 2))
    await eventually(lambda: _status(kube, "fixed").get("partitionCount") == 2, what="status")

    await kube.patch_spec(JOBQUEUES, NAMESPACE, "fixed", {"partitions": 4})

    def refused() -> dict[str, Any] | None:
        for cond in _status(kube, "fixed").get("conditions", []):
            if cond["type"] == "PartitionsChangeRefused" and cond["status"] == "True":
                return dict(cond)
        return None

    condition = await eventually(refused, what="the PartitionsChangeRefused condition")
    assert "keeps 2" in condition["message"]
    reasons = {e.get("reason") for e in kube.events(involved="fixed")}
    assert "PartitionsChangeRefused" in reasons
    assert _env(kube, "fixed")["JOBQUEUE_PARTITIONS"] == "2"
    assert _status(kube, "fixed")["partitionCount"] == 2


async def test_the_limits_usage_of_every_partition_is_summed(
    kube: KubeEmulator, operator: OperatorContext, redis_url: str, redis_client: Redis
) -> None:
    limits = [{"type": "noop", "concurrency": 20}]
    body = _queue("limited", redis_url, 2)
    body["spec"]["limits"] = limits
    await apply(kube, body)
    settings = QueueSettings(redis_url=redis_url, stream="limited:work", partitions=2)
    for n, keys in enumerate(settings.partition_keys):  # jobs running in each partition
        await redis_client.zadd(keys.limit_leases("noop"), {f"{n}-1": 2**50, f"{n}-2": 2**50})
    await AsyncClient(redis_client, settings).enqueue_many([NewJob("noop", {})] * 4)

    status = await eventually(
        lambda: _status(kube, "limited").get("limits") and _status(kube, "limited"),
        what="status.limits",
    )

    assert status["limits"] == [{"type": "noop", "running": 4, "concurrency": 20}]
