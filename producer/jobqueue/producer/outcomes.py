"""What an enqueue answers when it gets no 202: 503, ``Retry-After``, and what became of
its jobs, with their ids.

``not_enqueued``: nothing was written (the request's deadline came before its job was
sent, Redis refused the write, or the write arrived past the deadline and the script
declined it). ``unknown``: the call was with Redis when the deadline came or the
connection broke, so the job may be enqueued. Either way the caller holds the job id:
``GET /jobs/{jobId}`` settles the question once the answer is back (the script writes
nothing past the deadline by Redis's clock), and retrying with the same ``job_id`` or
idempotency key never enqueues a job twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiohttp import web
from redis.exceptions import RedisError

from jobqueue.core import redis_errors
from jobqueue.core.client import EnqueueExpired
from jobqueue.core.connection import REDIS_REFUSED, REDIS_UNAVAILABLE
from jobqueue.producer.batching import NotSent, OutcomeUnknown
from jobqueue.producer.errors import RETRY_AFTER_S
from jobqueue.producer.models import ErrorBody

log = logging.getLogger(__name__)
ENQUEUE_FAILURES = (NotSent, OutcomeUnknown, EnqueueExpired, TimeoutError, RedisError)
"""What an enqueue may meet that is Redis's trouble, not the request's: any error Redis
answers, since the jobs were checked before they were sent (one Redis refuses alone is
answered alone, `AsyncClient.enqueue_each`)."""
RETRY_SAFELY = (
    "GET /jobs/{id} tells whether it was; retry with the same job_id (or idempotency key):"
    " that never enqueues a job twice"
)


def enqueue_failed(job_ids: Sequence[str], exc: BaseException, *, batch: bool) -> web.Response:
    """The 503 for an enqueue of ``job_ids`` that met ``exc`` (one of `ENQUEUE_FAILURES`)."""
    if isinstance(exc, RedisError):
        redis_errors.record("producer", exc)
    if isinstance(exc, RedisError) and not isinstance(exc, REDIS_UNAVAILABLE):
        # Not a kind of unavailability we know: worth one line naming it.
        log.error("enqueue met a Redis error: %s: %s", type(exc).__name__, exc)
    if _not_written(job_ids, exc):
        body = ErrorBody(
            error="Redis unavailable",
            detail=f"not enqueued: {_why(exc)}; retry later with the same job_id",
            outcome="not_enqueued",
        )
    else:
        body = ErrorBody(
            error="Outcome unknown",
            detail=f"{_why(exc)}, so the job may be enqueued: {RETRY_SAFELY}",
            outcome="unknown",
        )
    if batch:
        body.jobIds = list(job_ids)
    else:
        [body.jobId] = job_ids
    return web.Response(
        status=503,
        text=body.model_dump_json(exclude_none=True),
        content_type="application/json",
        headers={"Retry-After": RETRY_AFTER_S},
    )


def _not_written(job_ids: Sequence[str], exc: BaseException) -> bool:
    if isinstance(exc, EnqueueExpired):
        # A batch of several script calls may have run some in time.
        return set(exc.job_ids) >= set(job_ids)
    return isinstance(exc, (NotSent, *REDIS_REFUSED))


def _why(exc: BaseException) -> str:
    if isinstance(exc, NotSent):
        return "Redis did not take the job within the request's deadline"
    if isinstance(exc, EnqueueExpired):
        return "the write reached Redis after the request's deadline"
    if isinstance(exc, OutcomeUnknown | TimeoutError):
        return "Redis did not answer within the request's deadline"
    if isinstance(exc, REDIS_REFUSED):
        return f"Redis refused the write ({type(exc).__name__})"
    if isinstance(exc, REDIS_UNAVAILABLE):
        return f"the connection to Redis failed ({type(exc).__name__})"
    return f"Redis answered an error ({type(exc).__name__}: {exc})"
