"""Two operator replicas: only the one with the highest peering priority acts."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

from redis.asyncio import Redis
from support.kube_emulator import (
    DEPLOYMENTS,
    NAMESPACE,
    PEERINGS,
    KubeEmulator,
    apply,
    eventually,
    jobqueue,
)

from jobqueue.operator.scaler import OperatorContext
from jobqueue.operator.settings import OperatorSettings

Starter = Callable[[OperatorSettings], contextlib.AbstractAsyncContextManager[OperatorContext]]


async def test_the_lower_priority_replica_stays_idle(
    kube: KubeEmulator,
    start_operator: Starter,
    operator_settings: OperatorSettings,
    redis_url: str,
    redis_client: Redis,
) -> None:
    # Given the peering object and a leader that has announced itself in it
    await kube.create(PEERINGS, None, {"metadata": {"name": "jobqueue-operator"}})
    leader_settings = dataclasses.replace(operator_settings, standalone=False, priority=100)
    standby_settings = dataclasses.replace(operator_settings, standalone=False, priority=0)
    async with start_operator(leader_settings) as leader:
        await eventually(
            lambda: (kube.get(PEERINGS, None, "jobqueue-operator") or {}).get("status"),
            what="leader in the peering object",
        )
        async with start_operator(standby_settings) as standby:
            await eventually(
                lambda: len((kube.get(PEERINGS, None, "jobqueue-operator") or {})["status"]) == 2,
                what="both replicas in the peering object",
            )
            # When a JobQueue gets work
            await apply(kube, jobqueue("shared", redis_url))
            await redis_client.xadd("shared:work", {"type": "noop", "payload": "{}"})

            # Then the leader scales it and the standby never polls it
            await eventually(
                lambda: (
                    (kube.get(DEPLOYMENTS, NAMESPACE, "shared-worker") or {})
                    .get("spec", {})
                    .get("replicas")
                    == 1
                ),
                what="leader scaled",
            )
            start = leader.polls[(NAMESPACE, "shared")]
            await eventually(
                lambda: leader.polls[(NAMESPACE, "shared")] >= start + 5, what="leader polls"
            )
            assert standby.polls[(NAMESPACE, "shared")] == 0
