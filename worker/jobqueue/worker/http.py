"""The worker's HTTP side server: ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz``: 200 while the event loop answers (a blocked loop cannot), with how long
  ago the read loop last completed a read; the kubelet restarts a pod that stops
  answering.
- ``/readyz``: 200 when Redis answers ``PING`` within a second, else 503.
- ``/metrics``: the worker's Prometheus registry in text format.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis as AsyncRedis

from jobqueue.worker.metrics import WorkerMetrics
from jobqueue.worker.resilience import TRANSIENT_ERRORS

READY_TIMEOUT_S = 1.0
READY_ERRORS: tuple[type[Exception], ...] = (TimeoutError, *TRANSIENT_ERRORS)


class LoopState(Protocol):
    last_read_at: float
    restarts: int


class SideServer:
    """A small aiohttp server beside the worker."""

    def __init__(self, redis: AsyncRedis, metrics: WorkerMetrics, loop_state: LoopState) -> None:
        self.redis = redis
        self.metrics = metrics
        self.loop_state = loop_state
        self.app = web.Application()
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/readyz", self.readyz)
        self.app.router.add_get("/metrics", self.metrics_text)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def healthz(self, request: web.Request) -> web.Response:
        since_s = round(time.monotonic() - self.loop_state.last_read_at, 3)
        body = {
            "status": "ok",
            "lastReadSecondsAgo": since_s,
            "loopRestarts": self.loop_state.restarts,
        }
        return web.json_response(body)

    async def readyz(self, request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self.redis.ping(), READY_TIMEOUT_S)
        except READY_ERRORS as exc:
            return web.json_response({"status": "unavailable", "reason": str(exc)}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics_text(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
