"""Serving the app until SIGTERM, with JSON even for requests aiohttp cannot parse.

aiohttp answers a request its parser refuses (a bad chunk size, Content-Length with
Transfer-Encoding, a control character in a header) before any middleware runs, in
text/plain. `JsonErrorRunner` serves the app with a request handler whose
``handle_error`` answers ``{"error": reason, "detail": ...}`` as every other error does
(the parser's message as detail, never a traceback). Only a response that had already
begun when the error came cannot be replaced: the connection is closed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from http import HTTPStatus

import uvloop
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from jobqueue.producer.app import create_app
from jobqueue.producer.errors import json_error
from jobqueue.producer.settings import ProducerSettings

log = logging.getLogger(__name__)

GC_THRESHOLDS = (50_000, 20, 10)
"""Python's cyclic GC runs every 700 net allocations by default, and a request makes
hundreds: the collections cost ~10 % of the CPU of a ``POST /jobs`` and stall requests.
At 50,000 (with start-up's objects frozen out of every scan) they cost little (bench/)."""


class _JsonErrorHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; raises if sent already
        detail = message if status < 500 else "see the producer's log"
        response = json_error(status, HTTPStatus(status).phrase, detail)
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer parse errors in JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # starts the app
        return _JsonErrorServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            **server._kwargs,
        )


async def serve(settings: ProducerSettings) -> None:
    """Serve until SIGTERM/SIGINT, then finish in-flight requests (up to
    ``shutdown_timeout_s``) and close Redis."""
    access_log = logging.getLogger("aiohttp.access") if settings.access_log else None
    runner = JsonErrorRunner(
        create_app(settings), access_log=access_log, shutdown_timeout=settings.shutdown_timeout_s
    )
    await runner.setup()
    _tune_gc()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info(
            "producer on http://%s:%d, stream %s, authentication %s",
            settings.host,
            settings.port,
            settings.queue.stream,
            "on" if settings.auth_enabled else "off",
        )
        await stop.wait()
    finally:
        await runner.cleanup()


def _tune_gc() -> None:
    """Freeze what start-up made (modules, the app, schemas: it lives as long as the
    process, so no collection needs to scan it) and collect less often. No collection
    first: it found ~20 unreachable objects after start-up and took 25-60 ms before the
    producer listened (bench/startup.py)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(settings: ProducerSettings) -> None:
    """`serve` on a uvloop event loop (libuv: cheaper sockets and scheduling per request)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings))
