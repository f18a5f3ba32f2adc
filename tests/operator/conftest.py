"""Fixtures of the operator tests: a Kubernetes API emulator over HTTP and Kopf running
in-process against it (cluster-wide, standalone), with short intervals."""

from __future__ import annotations

import asyncio
import threading
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
    """Kopf with the JobQueue handlers, running until the test ends.

    It runs on its own event loop in a thread, as ``kopf run`` would in its own process:
    on stopping, Kopf waits for every task of its loop, and the test's tasks are not its.
    """
    ctx = OperatorContext(settings=operator_settings)
    stop, ready = threading.Event(), threading.Event()

    def run() -> None:
        asyncio.run(run_operator(ctx, server=kube.url, stop_flag=stop, ready_flag=ready))

    thread = threading.Thread(target=run, name="kopf", daemon=True)
    thread.start()
    assert await asyncio.to_thread(ready.wait, 20), "Kopf did not start"
    yield ctx
    stop.set()
    await asyncio.to_thread(thread.join, 30)
    assert not thread.is_alive(), "Kopf did not stop"
