"""Every request's deadline: past ``request_deadline_s`` it answers 503 with
``Retry-After``, whatever Redis does (down, frozen, paused), never a 500 and never a hang.

The deadline is stamped on the request when it arrives (`DEADLINE`, loop time). Routes
that can say more answer by it themselves: an enqueue says whether its job may have
been written (`jobqueue.producer.outcomes`). This middleware is the net under every
route: a request still running `GRACE_S` after its deadline is cancelled (which drops
its Redis connection, so nothing waits on a hung socket) and answered here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from jobqueue.producer.errors import RETRY_AFTER_S, json_error
from jobqueue.producer.long_poll import allowance_s

log = logging.getLogger(__name__)

DEADLINE = web.RequestKey("deadline", float)
"""When the request gives up, in the event loop's time."""
GRACE_S = 0.25
"""How long after the deadline the net waits for a route answering by it itself."""
CHECK_EVERY_S = 0.05
"""How often, at most, the overrun timer looks at the running requests."""


class _Overruns:
    """The running requests' tasks and when each is to be cancelled, with one timer for
    all: a timer per request (``call_at`` and its cancel) cost ~2 us of every request.
    The timer fires at the earliest cancel time, then checks at most every
    `CHECK_EVERY_S`, so a request overrunning its deadline is cancelled within
    ``GRACE_S`` + `CHECK_EVERY_S` of it."""

    def __init__(self) -> None:
        self._running: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def add(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], when: float) -> None:
        self._running[task] = when
        if when < self._timer_at:
            self._start_timer(loop, when)

    def remove(self, task: asyncio.Task[Any]) -> None:
        del self._running[task]

    def _start_timer(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._check, loop)
        self._timer_at = when

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        self._timer, self._timer_at = None, float("inf")
        earliest = float("inf")
        for task, when in list(self._running.items()):
            if when <= now:
                del self._running[task]
                self.expired.add(task)
                task.cancel()
            elif when < earliest:
                earliest = when
        if earliest != float("inf"):
            self._start_timer(loop, max(earliest, now + CHECK_EVERY_S))


def deadline_middleware(deadline_s: float, max_wait_s: float = 0.0) -> Middleware:
    """Stamps `DEADLINE` on each request and answers 503 when the route overruns it.

    A long poll (``?wait=S``, `jobqueue.producer.long_poll`) gets its wait on top: its
    deadline is ``S`` (at most ``max_wait_s``) plus ``deadline_s``."""
    overruns = _Overruns()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        if request.query_string:
            deadline += allowance_s(request, max_wait_s)
        request[DEADLINE] = deadline
        task = asyncio.current_task()  # the handler's own (request.task is the connection's)
        assert task is not None
        overruns.add(loop, task, deadline + GRACE_S)
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
        except asyncio.CancelledError:
            if task not in overruns.expired:
                raise
        finally:
            if task in overruns.expired:
                overruns.expired.discard(task)
                task.uncancel()
            else:
                overruns.remove(task)
        if response is not None:
            return response
        log.warning("%s %s: no answer within %.1f s", request.method, request.path, deadline_s)
        return json_error(
            503,
            "Deadline exceeded",
            f"no answer from Redis within {deadline_s:g} s; retry later",
            headers={"Retry-After": RETRY_AFTER_S},
        )

    return middleware
