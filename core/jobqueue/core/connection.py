"""Opening Redis connections the same way in every component."""

from __future__ import annotations

from redis.asyncio import Redis as AsyncRedis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry as RedisRetry

HEALTH_CHECK_INTERVAL_S = 15


def async_redis(url: str, *, socket_timeout_s: float | None = 30.0) -> AsyncRedis:
    """An asyncio Redis client for ``url`` (``redis://`` or ``rediss://``), strings decoded.

    Commands are retried a few times on a dropped connection. The socket timeout must
    exceed any ``BLOCK`` a caller uses, or blocking reads would time out as errors.
    Bytes that are not UTF-8 (a foreign producer's) decode to lone surrogates and encode
    back to the same bytes, so such an entry can be read and dead-lettered intact
    instead of failing every read that meets it.
    """
    return AsyncRedis.from_url(
        url,
        decode_responses=True,
        encoding_errors="surrogateescape",
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=5.0,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        retry=RedisRetry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
    )
