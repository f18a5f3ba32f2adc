"""``jobqueue_redis_errors_total{component,kind}``: Redis failures a process rode out.

Each place that catches a Redis error and carries on (a worker's retry of an outcome, its
read loop reconnecting, the producer's 503, the operator's failed poll) calls `record`.
The counts are per process, like the process collectors: one
`jobqueue.core.process_metrics.RedisErrorsCollector` in each registry a process serves
exposes them (prometheus_client is not imported here: the producer records errors but
imports it only when first scraped). ``kind`` is one of `KINDS`, so a flood of
errors never grows the series count.
"""

from __future__ import annotations

from collections import Counter

from redis import exceptions as redis_errors

from jobqueue.core.connection import NoReplicasError

KINDS = ("connection", "timeout", "oom", "readonly", "auth", "other")
NAME = "jobqueue_redis_errors"
_AUTH_WORDS = ("NOAUTH", "WRONGPASS", "NOPERM")

_counts: Counter[tuple[str, str]] = Counter()


def kind_of(exc: BaseException) -> str:
    """Which of `KINDS` a Redis error is."""
    if isinstance(exc, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
        return "auth"
    if isinstance(exc, redis_errors.ResponseError) and str(exc).startswith(_AUTH_WORDS):
        return "auth"
    if isinstance(exc, redis_errors.TimeoutError):
        return "timeout"
    if isinstance(exc, redis_errors.OutOfMemoryError):
        return "oom"
    if isinstance(exc, redis_errors.ReadOnlyError | redis_errors.MasterDownError | NoReplicasError):
        return "readonly"  # up, but not serving: a replica, cut off, or too few replicas
    if isinstance(exc, redis_errors.ConnectionError):  # refused, dropped, still loading
        return "connection"
    return "other"


def record(component: str, exc: BaseException) -> None:
    """Count one Redis error of ``component`` (``worker``, ``producer``, ``operator``)."""
    _counts[component, kind_of(exc)] += 1


def count(component: str, kind: str) -> int:
    """Errors counted so far in this process (for tests and local views)."""
    return _counts[component, kind]


def counts() -> list[tuple[tuple[str, str], int]]:
    """Every ((component, kind), count) so far, sorted (what /metrics exposes)."""
    return sorted(_counts.items())
