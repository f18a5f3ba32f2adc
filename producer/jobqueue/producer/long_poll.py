"""Long polls: ``GET /jobs/{id}?wait=S`` answers when the job settles or ``S`` passes.

The wait is capped by ``JOBQUEUE_MAX_WAIT_S``. The request deadline
(`jobqueue.producer.deadline`) is the wait plus ``JOBQUEUE_REQUEST_DEADLINE_S``: a long
poll gets the time it asked for, and still no more than that for Redis to answer once
the wait is over. The wait itself blocks on Redis (`jobqueue.core.waiting`), one
connection of the shared pool per waiting request.
"""

from __future__ import annotations

import math

from aiohttp import web

WAIT_PARAM = "wait"


def requested_wait_s(request: web.Request, max_wait_s: float) -> float:
    """Seconds ``request`` asks to wait (``?wait=``), capped at ``max_wait_s``; 0 when
    it asks none. ValueError with a reason when the value is not a number >= 0."""
    text = request.query.get(WAIT_PARAM)
    if text is None or request.method != "GET":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a number of seconds, 0 or more")
    return min(value, max_wait_s)


def allowance_s(request: web.Request, max_wait_s: float) -> float:
    """How much longer than the usual deadline ``request`` may run: its wait (0 for a
    bad value, which the route answers with 422 at once)."""
    try:
        return requested_wait_s(request, max_wait_s)
    except ValueError:
        return 0.0
