"""A namespaced install, run: the operator started with the environment the chart renders
for `operator.watchNamespaces` serves JobQueues there (Kopf's namespaced mode, a
KopfPeering in each namespace), ignores them elsewhere, and needs no permission beyond the
Role the chart grants in that namespace and the cluster-wide CRD read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock
from k8s.objects import Obj, is_operator_cluster_role, render_chart
from k8s.test_pod_runtime import container_env
from k8s.test_rbac import grants
from support.kube_emulator import (
    DEPLOYMENTS,
    JOBQUEUES,
    TEST_CLIENT_AGENT,
    KubeEmulator,
    eventually,
    jobqueue,
    start_emulator,
)

from jobqueue.operator.controller import run_operator
from jobqueue.operator.scaler import OperatorContext
from jobqueue.operator.settings import OperatorSettings

WATCHED, OTHER = "team-a", "team-b"
KOPF_PEERINGS = "kopf.dev/v1/kopfpeerings"


def chart_settings(objects: list[Obj], redis_url: str, files: Path) -> OperatorSettings:
    (statefulset,) = [o for o in objects if o["kind"] == "StatefulSet"]
    pod = statefulset["spec"]["template"]["spec"]
    env = container_env(objects, pod, redis_url, files)
    return OperatorSettings.from_env({**env, "JOBQUEUE_OPERATOR_HTTP_PORT": "0"})


def add_namespaced_peerings(kube: KubeEmulator, objects: list[Obj]) -> None:
    """Serve Kopf's KopfPeering with the objects the chart creates."""
    kube.emulator.resources[KOPF_PEERINGS] = kmock.ResourceInfo(
        kind="KopfPeering",
        singular="kopfpeering",
        namespaced=True,
        verbs={"get", "list", "watch", "patch"},
    )
    for peering in (o for o in objects if o["kind"] == "KopfPeering"):
        meta = peering["metadata"]
        key = (kmock.resource(KOPF_PEERINGS), meta["namespace"], meta["name"])
        kube.emulator.objects[key] = {**peering, "metadata": dict(meta)}


@contextlib.asynccontextmanager
async def operator_from_chart(
    kube: KubeEmulator, settings: OperatorSettings
) -> AsyncIterator[None]:
    ctx = OperatorContext(settings=settings)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_operator(ctx, server=kube.url, stop_flag=stop, ready_flag=ready))
    try:
        await asyncio.wait_for(ready.wait(), timeout=30)
        yield
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)


def replicas(kube: KubeEmulator, namespace: str, name: str) -> Any:
    return (
        (kube.get(DEPLOYMENTS, namespace, f"{name}-worker") or {}).get("spec", {}).get("replicas")
    )


async def test_a_namespaced_install_serves_its_namespaces_only_within_its_role(
    redis_url: str, tmp_path: Path
) -> None:
    objects = render_chart({"operator": {"watchNamespaces": [WATCHED]}})
    settings = chart_settings(objects, redis_url, tmp_path)
    assert settings.namespaces == (WATCHED,)
    async for kube in start_emulator():
        await _serve_one_namespace(kube, objects, settings, redis_url)
        return


async def _serve_one_namespace(
    kube: KubeEmulator, objects: list[Obj], settings: OperatorSettings, redis_url: str
) -> None:
    add_namespaced_peerings(kube, objects)
    async with operator_from_chart(kube, settings):
        # given a JobQueue in the watched namespace and one elsewhere
        await kube.create(JOBQUEUES, OTHER, jobqueue("ignored", redis_url))
        await kube.create(JOBQUEUES, WATCHED, jobqueue("served", redis_url))
        # then the watched one gets its workers, the other nothing
        await eventually(lambda: replicas(kube, WATCHED, "served") == 0, 30, "deployment")
        assert kube.get(DEPLOYMENTS, OTHER, "ignored-worker") is None
        calls = kube.calls
    # and every call it made is granted by the Role there or the ClusterRole
    (role,) = [o for o in objects if o["kind"] == "Role"]
    assert role["metadata"]["namespace"] == WATCHED
    (cluster_role,) = [o for o in objects if is_operator_cluster_role(o)]
    assert calls - grants(role) - grants(cluster_role) == set()
    # and it never touched the other namespace, nor listed namespaces
    ours = [r for r in kube.requests if r.headers.get("User-Agent") != TEST_CLIENT_AGENT]
    assert not [r for r in ours if f"/namespaces/{OTHER}/" in str(r.url)]
    assert not [r for r in ours if str(r.url).split("?")[0].endswith("/namespaces")]
