"""Fixtures of the operator tests: a Kubernetes API emulator over HTTP and Kopf running
in-process against it (cluster-wide, standalone), with short intervals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from support.kube_emulator import KubeEmulator, start_emulator

from jobqueue.operator.controller import run_operator
from jobqueue.operator.scaler import OperatorContext
from jobqueue.operator.settings import OperatorSettings


@pytest.fixture
async def kube() -> AsyncIterator[KubeEmulator]:
    async for emulator in start_emulator():
        yield emulator


@pytest.fixture
def operator_settings() -> OperatorSettings:
    return OperatorSettings(
        http_port=0,
        status_interval_s=0.3,
        deployment_refresh_s=0.5,
        reap_interval_s=0.3,
        reap_min_idle_s=0.0,
        standalone=True,
    )


@pytest.fixture
async def operator(
    kube: KubeEmulator, operator_settings: OperatorSettings
) -> AsyncIterator[OperatorContext]:
    """Kopf with the JobQueue handlers, running until the test ends."""
    ctx = OperatorContext(settings=operator_settings)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_operator(ctx, server=kube.url, stop_flag=stop, ready_flag=ready))
    await asyncio.wait_for(ready.wait(), timeout=20)
    yield ctx
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=20)
