"""Fixtures of the operator tests: a Kubernetes API emulator over HTTP and Kopf running
in-process against it (cluster-wide, standalone), with short intervals."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime

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


@contextlib.asynccontextmanager
async def running_operator(
    kube: KubeEmulator,
    settings: OperatorSettings,
    wall_clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[OperatorContext]:
    """Kopf with the JobQueue handlers against ``kube``, until the block exits.

    It runs on its own event loop in a thread, as ``kopf run`` would in its own process:
    on stopping, Kopf waits for every task of its loop, and the test's tasks are not its.
    """
    ctx = OperatorContext(settings=settings)
    if wall_clock is not None:
        ctx.wall_clock = wall_clock
    stop, ready = threading.Event(), threading.Event()

    def run() -> None:
        asyncio.run(run_operator(ctx, server=kube.url, stop_flag=stop, ready_flag=ready))

    thread = threading.Thread(target=run, name="kopf", daemon=True)
    thread.start()
    try:
        assert await asyncio.to_thread(ready.wait, 20), "Kopf did not start"
        yield ctx
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 30)
    assert not thread.is_alive(), "Kopf did not stop"


@pytest.fixture
async def operator(
    kube: KubeEmulator, operator_settings: OperatorSettings
) -> AsyncIterator[OperatorContext]:
    """One standalone operator, running until the test ends."""
    async with running_operator(kube, operator_settings) as ctx:
        yield ctx


OperatorFactory = Callable[..., contextlib.AbstractAsyncContextManager[OperatorContext]]


@pytest.fixture
def start_operator(kube: KubeEmulator) -> OperatorFactory:
    """``async with start_operator(settings[, wall_clock]) as ctx``: more operators in one
    test, or one whose cron schedules follow a clock the test moves."""
    return lambda settings, wall_clock=None: running_operator(kube, settings, wall_clock)
