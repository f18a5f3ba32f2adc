"""Riding out Redis going away: which errors are transient, and retrying through them.

A dropped connection, a server restart (``LOADING`` while the AOF replays), a timeout,
Redis refusing writes (``OOM`` at ``maxmemory``, ``READONLY`` on a replica during a
failover) is transient: the worker backs off and tries again, nothing is lost because an entry is
acknowledged only once its outcome is written. Anything else (a ``ResponseError`` from a
bad command, a bug) is not caught here.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    AuthorizationError,
    BusyLoadingError,
    ClusterError,
    ConnectionError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

from jobqueue.core import redis_errors

T = TypeVar("T")
log = logging.getLogger("jobqueue.worker")

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,
    TimeoutError,
    BusyLoadingError,
    OutOfMemoryError,
    ReadOnlyError,
    # Redis Cluster: a multi-key command meeting its slot half migrated (TRYAGAIN), and
    # redirections or TRYAGAINs past redis-py's limit, or the cluster down (ClusterError).
    TryAgainError,
    ClusterError,
)
ACCESS_DENIED_ERRORS: tuple[type[Exception], ...] = (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    AuthorizationError,
    NoPermissionError,
)
"""A wrong password (``WRONGPASS``, ``NOAUTH``) or an ACL denial (``NOPERM``): not
transient (redis-py makes some of them ConnectionErrors, so test for these first);
waiting does not fix them, the deployment's credentials or ACL must change."""
VANISHED_MARKS = ("NOGROUP", "UNBLOCKED")
"""Replies when the stream or its group is gone (``FLUSHALL``, a deleted stream, a
restart without persistence): a blocked read is ended with ``UNBLOCKED``, the next
group command answers ``NOGROUP``."""
RECONNECT_BASE_S = 0.05


def denied(exc: BaseException) -> bool:
    """True when Redis refused this client's credentials or permissions."""
    return isinstance(exc, ACCESS_DENIED_ERRORS)


def vanished(exc: BaseException) -> bool:
    """True when ``exc`` says the stream or the consumer group no longer exists: a
    condition to recover from (recreate the group), not a crash."""
    return isinstance(exc, ResponseError) and str(exc).startswith(VANISHED_MARKS)


RECONNECT_CAP_S = 2.0


def reconnect_delay_s(failures: int) -> float:
    """Full-jitter delay before the ``failures``-th retry of a Redis call, seconds."""
    return random.random() * min(RECONNECT_CAP_S, RECONNECT_BASE_S * 2.0 ** min(failures, 10))


async def persist(call: Callable[[], Awaitable[T]], what: str) -> T:
    """``await call()`` until it does not fail with a transient Redis error.

    Used for the writes that must land (outcomes): they are idempotent (an entry already
    acknowledged is not acted on twice), so repeating one whose reply was lost is safe.
    Cancelling the calling task is the only way out, and leaves the entry pending.
    """
    failures = 0
    while True:
        try:
            return await call()
        except TRANSIENT_ERRORS as exc:
            redis_errors.record("worker", exc)
            failures += 1
            if failures == 1 or failures % 20 == 0:
                log.warning("%s: Redis unavailable (%s), retrying", what, exc)
            await asyncio.sleep(reconnect_delay_s(failures))
