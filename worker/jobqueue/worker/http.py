"""The worker's HTTP side server: ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz``: 200 while the event loop answers (a blocked loop cannot), with how long
  ago the read loop last completed a read; the kubelet restarts a pod that stops
  answering.
- ``/readyz``: 200 when Redis answers ``PING`` within a second, else 503; 503 also
  while Redis refuses this worker's credentials or permissions on any command.
- ``/metrics``: the worker's Prometheus registry in text format.

Served by asyncio's own streams, not aiohttp: importing aiohttp costs a worker more than
half of its start-up budget (bench/startup.py), and three GET routes for probes and
scrapers need only a request line, the headers skipped, and one response per connection
(``Connection: close``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis as AsyncRedis

from jobqueue.worker.metrics import WorkerMetrics
from jobqueue.worker.resilience import TRANSIENT_ERRORS

READY_TIMEOUT_S = 1.0
READY_ERRORS: tuple[type[Exception], ...] = (TimeoutError, *TRANSIENT_ERRORS)
REQUEST_TIMEOUT_S = 10.0
"""A client that has not sent its request head within this many seconds is dropped."""
MAX_HEAD_LINES = 100
JSON = "application/json"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
REASONS[503] = "Service Unavailable"

Response = tuple[int, str, bytes]
"""(status, content type, body)."""


class LoopState(Protocol):
    @property
    def last_read_at(self) -> float: ...
    @property
    def restarts(self) -> int: ...


class AccessState(Protocol):
    """Whether Redis refuses the worker's access (`RedisHealth`, or several summed)."""

    @property
    def denied_since(self) -> object: ...
    @property
    def denied_reason(self) -> str: ...


class SideServer:
    """A small HTTP/1.1 server beside the worker, on the worker's event loop."""

    def __init__(
        self,
        redis: AsyncRedis,
        metrics: WorkerMetrics,
        loop_state: LoopState,
        health: AccessState | None = None,
    ) -> None:
        self.redis = redis
        self.health = health
        self.metrics = metrics
        self.loop_state = loop_state
        self._server: asyncio.Server | None = None
        self._routes = {"/healthz": self.healthz, "/readyz": self.readyz}
        self._routes["/metrics"] = self.metrics_text

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def healthz(self) -> Response:
        since_s = round(time.monotonic() - self.loop_state.last_read_at, 3)
        body = {"status": "ok", "lastReadSecondsAgo": since_s}
        body["loopRestarts"] = self.loop_state.restarts
        return 200, JSON, orjson.dumps(body)

    async def readyz(self) -> Response:
        if self.health is not None and self.health.denied_since:
            reason = f"Redis refuses access: {self.health.denied_reason}"
            return 503, JSON, orjson.dumps({"status": "access denied", "reason": reason})
        try:
            await asyncio.wait_for(self.redis.ping(), READY_TIMEOUT_S)
        except READY_ERRORS as exc:
            return 503, JSON, orjson.dumps({"status": "unavailable", "reason": str(exc)})
        return 200, JSON, orjson.dumps({"status": "ready"})

    async def metrics_text(self) -> Response:
        return 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                method, path = await _read_head(reader)
            status, content_type, body = await self._answer(method, path)
            head = (
                f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass  # a client that went away or spoke no HTTP: nothing to answer
        finally:
            writer.close()

    async def _answer(self, method: str, path: str) -> Response:
        if method == "":
            return 400, JSON, b'{"error":"Bad request"}'
        route = self._routes.get(path.partition("?")[0])
        if route is None:
            return 404, JSON, b'{"error":"Not found"}'
        if method not in ("GET", "HEAD"):
            return 405, JSON, b'{"error":"Method not allowed"}'
        return await route()


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str]:
    """(method, path) of the request line, the header lines read past; ("", "") when the
    request line is not HTTP."""
    parts = (await reader.readline()).decode("latin-1").split()
    for _ in range(MAX_HEAD_LINES):
        if (await reader.readline()).strip() == b"":
            break
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return "", ""
    return parts[0], parts[1]
