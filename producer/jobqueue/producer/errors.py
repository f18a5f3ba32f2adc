"""Errors as JSON with a reason: never a traceback, never an HTML page.

`error_middleware` turns aiohttp's HTTP errors (404, 405, 413, ...) into
``{"error": reason, "detail": ...}``, Redis being unreachable into a 503 the caller may
retry, an enqueue that replicas did not confirm in time into a 503 naming the jobs
whose outcome is unknown, any other error Redis answers into a 503 naming it (never a
500: Redis's trouble is not the caller's), and anything unexpected into a bare 500
whose traceback goes to the log only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from redis import exceptions as redis_exceptions

from jobqueue.core import redis_errors
from jobqueue.core.connection import REDIS_UNAVAILABLE
from jobqueue.core.errors import EnqueueUnconfirmed
from jobqueue.core.wire import shown
from jobqueue.producer.models import ErrorBody, InvalidJob, Issue

log = logging.getLogger(__name__)

RETRY_AFTER_S = "1"
_PASSED_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


def json_error(
    status: int,
    error: str,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    job_ids: list[str] | None = None,
) -> web.Response:
    """A JSON error response: ``{"error": error, "detail": detail}`` (and ``jobIds``, whose
    outcome is then unknown)."""
    # A detail may quote what Redis holds (a record's state): bytes that are not UTF-8
    # shown as \\xNN, or the error would itself be a 500.
    body = ErrorBody(error=error, detail=None if detail is None else shown(detail), jobIds=job_ids)
    if job_ids is not None:
        body.outcome = "unknown"
    return web.Response(
        status=status,
        text=body.model_dump_json(exclude_none=True),
        content_type="application/json",
        headers=headers,
    )


def invalid_job(issues: Iterable[tuple[str, str]]) -> web.Response:
    """422 ``{"error": "Invalid job", "issues": [{"field", "message"}, ...]}``."""
    body = InvalidJob(issues=[Issue(field=f, message=m) for f, m in issues])
    return web.Response(status=422, text=body.model_dump_json(), content_type="application/json")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc)
    except EnqueueUnconfirmed as exc:
        if isinstance(exc.__cause__, redis_exceptions.RedisError):  # the connection was lost
            redis_errors.record("producer", exc.__cause__)
        log.warning("enqueue unconfirmed during %s %s: %s", request.method, request.path, exc)
        return json_error(
            503,
            "Enqueue unconfirmed",
            f"{exc.reason}: the jobs may or may not be queued, and may not survive a "
            "failover; retry with the same idempotency key to be sure of one job",
            headers={"Retry-After": RETRY_AFTER_S},
            job_ids=exc.job_ids,
        )
    except REDIS_UNAVAILABLE as exc:
        redis_errors.record("producer", exc)
        log.warning("Redis unavailable during %s %s: %s", request.method, request.path, exc)
        return json_error(
            503,
            "Redis unavailable",
            "the queue's Redis cannot be reached or cannot write now; retry later",
            headers={"Retry-After": RETRY_AFTER_S},
        )
    except redis_exceptions.InvalidResponse as exc:
        # REDIS_URL leads to a server that is not Redis: a setting to fix, said in one line.
        redis_errors.record("producer", exc)
        log.error("the Redis URL leads to a server that does not answer as Redis: %s", exc)
        return json_error(503, "Redis unavailable", "the configured Redis URL is not a Redis")
    except redis_exceptions.RedisError as exc:
        # Never a 500 for Redis's trouble: requests are checked before they reach Redis, so
        # an error Redis answers is not the caller's fault (an error code new to us, a
        # foreign key in a shared Redis). One line in the log names it; the caller may retry.
        redis_errors.record("producer", exc)
        log.error(
            "Redis answered an error during %s %s: %s: %s",
            request.method,
            request.path,
            type(exc).__name__,
            exc,
        )
        return json_error(
            503,
            "Redis error",
            f"Redis refused the request ({type(exc).__name__}: {exc}); retry later",
            headers={"Retry-After": RETRY_AFTER_S},
        )
    except Exception:
        # The last resort: the traceback goes to the log, the caller gets a reason only.
        log.exception("unexpected error during %s %s", request.method, request.path)
        return json_error(500, "Internal error", "see the producer's log")


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    default_text = f"{exc.status}: {exc.reason}"
    detail = exc.text if exc.text and exc.text != default_text else None
    headers = {k: exc.headers[k] for k in _PASSED_HEADERS if k in exc.headers}
    return json_error(exc.status, exc.reason, detail, headers)
