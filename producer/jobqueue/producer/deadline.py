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

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from jobqueue.producer.errors import RETRY_AFTER_S, json_error
from jobqueue.producer.long_poll import allowance_s

log = logging.getLogger(__name__)

DEADLINE = web.RequestKey("deadline", float)
"""When the request gives up, in the event loop's time."""
GRACE_S = 0.25
"""How long after the deadline the net waits for a route answering by it itself."""


def deadline_middleware(deadline_s: float, max_wait_s: float = 0.0) -> Middleware:
    """Stamps `DEADLINE` on each request and answers 503 when the route overruns it.

    A long poll (``?wait=S``, `jobqueue.producer.long_poll`) gets its wait on top: its
    deadline is ``S`` (at most ``max_wait_s``) plus ``deadline_s``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        if request.query_string:
            deadline += allowance_s(request, max_wait_s)
        request[DEADLINE] = deadline
        # One timer that cancels the handler's task (asyncio.timeout does the same with
        # more bookkeeping, which every request would pay for).
        task = asyncio.current_task()
        assert task is not None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = loop.call_at(deadline + GRACE_S, expire)
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
        except asyncio.CancelledError:
            if not expired:
                raise
        finally:
            timer.cancel()
        if expired:
            task.uncancel()
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
