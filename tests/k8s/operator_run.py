"""The real operator (Kopf and our handlers) against the Kubernetes API emulator, with Kopf
peering on, as its replicas run in a cluster."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import kmock
from support.kube_emulator import KubeEmulator

from jobqueue.operator.controller import run_operator
from jobqueue.operator.scaler import OperatorContext
from jobqueue.operator.settings import OperatorSettings

PEERINGS = "kopf.dev/v1/clusterkopfpeerings"
PEERING = "jobqueue-operator"
STOP_TIMEOUT_S = 30


def add_cluster_peering(kube: KubeEmulator) -> None:
    """Serve Kopf's ClusterKopfPeering with the object the chart creates (the emulator
    knows only the resources it is told about)."""
    kube.emulator.resources[PEERINGS] = kmock.ResourceInfo(
        kind="ClusterKopfPeering",
        singular="clusterkopfpeering",
        namespaced=False,
        verbs={"get", "list", "watch", "patch"},
    )
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering"}
    key = (kmock.resource(PEERINGS), None, PEERING)
    kube.emulator.objects[key] = {**peering, "metadata": {"name": PEERING}}


@contextlib.asynccontextmanager
async def running_operator(kube: KubeEmulator, priority: int = 0) -> AsyncIterator[OperatorContext]:
    """One operator replica with peering priority ``priority``, until the block ends."""
    settings = OperatorSettings(
        http_port=0,
        status_interval_s=0.3,
        deployment_refresh_s=0.5,
        reap_interval_s=0.3,
        reap_min_idle_s=0.0,
        standalone=False,
        peering=PEERING,
        priority=priority,
    )
    ctx = OperatorContext(settings=settings)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_operator(ctx, server=kube.url, stop_flag=stop, ready_flag=ready))
    try:
        await asyncio.wait_for(ready.wait(), timeout=30)
        yield ctx
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=STOP_TIMEOUT_S)
