"""Whether the queue's Redis takes writes now: probed, and asked when a handler fails.

The worker's own traffic cannot tell: ``XREADGROUP``, ``XACK`` and ``XCLAIM`` are not
refused at ``maxmemory`` (only commands that may grow memory are), and a Lua script
whose first write was allowed may go on writing, so the outcome scripts (they start
with ``XACK``) and promotion (it starts with ``ZREM``) keep landing while every
handler's ``HSET`` fails with ``OOM``. So the worker probes with a small write that
Redis refuses whenever it refuses writes (``HSET`` + ``EXPIRE`` on ``{stream}:health``):
every ``PROBE_INTERVAL_S`` while healthy, every ``RECHECK_S`` while not, and at once
when a handler fails with a Redis error.

While Redis is unhealthy the read loop reads no new jobs, and a handler failure that
Redis caused is held rather than counted as an attempt (see `Executor`): Redis being
unwell is not the job's failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError, ResponseError

from jobqueue.core.connection import drop_idle_connections
from jobqueue.core.keys import QueueKeys
from jobqueue.core.scripts import OWN_KEYS_LUA
from jobqueue.core.wire import utc_now_iso
from jobqueue.worker.resilience import ACCESS_DENIED_ERRORS, TRANSIENT_ERRORS

log = logging.getLogger("jobqueue.worker")

PROBE_INTERVAL_S = 1.0
"""How often a healthy Redis is probed, seconds."""
RECHECK_S = 0.25
"""How often an unhealthy Redis is probed again, seconds."""
PROBE_TIMEOUT_S = 2.0
"""A probe not answered within this is a failed one (a frozen or paused Redis), seconds."""
HEALTH_TTL_S = 60
"""Lifetime of the probe hash, seconds: it never outlives its workers by long."""
PROBE_ERRORS: tuple[type[Exception], ...] = (TimeoutError, *TRANSIENT_ERRORS)
# KEYS: the health hash. ARGV: consumer, now_iso, ttl_s. A write Redis refuses when it
# refuses writes (a script that may write is refused whole under OOM, or on a replica);
# a key another application holds as another type is left alone (returns 0).
PROBE = (
    OWN_KEYS_LUA
    + """
if not ours(KEYS[1], 'hash') then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
)
CAUSE_DEPTH = 5
"""How far down an exception's causes a Redis error is looked for."""


def redis_cause(exc: BaseException | None) -> BaseException | None:
    """``exc`` or the first of its causes that is a Redis outage or refusal, if any."""
    for _ in range(CAUSE_DEPTH):
        if exc is None or isinstance(exc, TRANSIENT_ERRORS):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class RedisHealth:
    """The last known health of the queue's Redis, kept fresh by `watch`."""

    def __init__(self, redis: AsyncRedis, keys: QueueKeys, consumer: str) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.healthy = asyncio.Event()
        self.healthy.set()  # until a probe says otherwise
        self.troubled_at = float("-inf")
        """`time.monotonic` of the last failed probe."""
        self.recovered_at = float("-inf")
        """`time.monotonic` of the last probe that found Redis healthy again."""
        self.episodes = 0
        """How often Redis became unhealthy since start."""
        self.denied_since: dict[str, float] = {}
        """Source ("probe", "read") -> `time.monotonic` since when Redis has refused
        this worker's credentials or permissions there."""
        self.denied_reason = ""
        self._foreign_said = False
        self._probe = redis.register_script(PROBE)

    @property
    def ok(self) -> bool:
        return self.healthy.is_set()

    def denied_for_s(self) -> float:
        """How long Redis has refused access without a break, seconds (0: it does not)."""
        if not self.denied_since:
            return 0.0
        return time.monotonic() - min(self.denied_since.values())

    def note_denied(self, source: str, exc: BaseException) -> None:
        """Redis refused access to ``source``: one clear line the first time."""
        if not self.denied_since:
            self.denied_reason = f"{type(exc).__name__}: {exc}"
            log.error(
                "Redis refused this worker's credentials or permissions (%s): check the"
                " user and password in REDIS_URL and the user's ACL; not retried as an"
                " outage, the worker exits unless it clears",
                self.denied_reason,
            )
        self.denied_since.setdefault(source, time.monotonic())

    def clear_denied(self, source: str) -> None:
        if self.denied_since.pop(source, None) is not None and not self.denied_since:
            log.warning("Redis accepts this worker's credentials again")

    def troubled_since(self, since: float) -> bool:
        """True if Redis is unhealthy now, or was found so (or found recovered) after
        ``since`` (monotonic)."""
        return not self.ok or max(self.troubled_at, self.recovered_at) >= since

    async def probe(self) -> bool:
        """One write probe; updates and returns the health."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                args: list[str | int] = [self.consumer, utc_now_iso(), HEALTH_TTL_S]
                ours = await self._probe(keys=[self.keys.health], args=args)
        except ACCESS_DENIED_ERRORS as exc:
            self.note_denied("probe", exc)
            self._unhealthy()
            return False
        except PROBE_ERRORS as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self._unhealthy(f"Redis is not taking writes ({reason}): new jobs wait")
            return False
        except ResponseError as exc:  # none known: said, and the watch goes on
            self._unhealthy(f"the write probe failed ({exc}): new jobs wait")
            return False
        if not ours and not self._foreign_said:
            # Redis ran a script that may write (refusing writes, it would have said OOM
            # or READONLY), so it counts as taking writes; the key is left alone.
            log.error(
                "write probe: %s is held by another application as another type;"
                " Redis counts as taking writes while it answers",
                self.keys.health,
            )
            self._foreign_said = True
        self.clear_denied("probe")
        if not self.ok:
            # Idle pooled connections may be dead ends of the outage (a restarted
            # server closed them); a handler run again on one would fail once more.
            await drop_idle_connections(self.redis)
            self.recovered_at = time.monotonic()
            self.healthy.set()
            log.warning("Redis takes writes again: reading resumes")
        return True

    def _unhealthy(self, message: str = "") -> None:
        self.troubled_at = time.monotonic()
        if self.ok:
            self.episodes += 1
            self.healthy.clear()
            if message:
                log.warning("%s", message)

    async def blames_redis(
        self, error: BaseException, started: float, *, first: bool = True
    ) -> bool:
        """Whether a handler's failure (``error``; a job timeout is a `TimeoutError`)
        was Redis's doing rather than the job's: the error comes from Redis (or is a
        timeout) and Redis was unhealthy during the attempt or is so now. On the
        ``first`` failure of a delivery a dropped connection counts too, even with
        Redis healthy now: a restart between two probes leaves pooled connections the
        server closed, and each fails once."""
        cause = redis_cause(error)
        if cause is None and not isinstance(error, TimeoutError):
            return False
        if self.troubled_since(started):
            return True
        # The probe runs now: an outage that began after the last probe is found here
        # (and one that ended just now shows as a recovery after the attempt began).
        healthy_now = await self.probe()
        if not healthy_now or self.troubled_since(started):
            return True
        if first and isinstance(cause, ConnectionError):
            await drop_idle_connections(self.redis)
            return True
        return False

    async def wait_healthy(self) -> None:
        await self.healthy.wait()

    async def watch(
        self, closing: asyncio.Event, give_up_after_s: float, give_up: Callable[[], None]
    ) -> None:
        """Probe until ``closing`` is set: often while unhealthy, now and then while
        healthy. Calls ``give_up`` once access has been refused for ``give_up_after_s``
        (a wrong password must show in the pod's status, not hide behind retries)."""
        while not closing.is_set():
            await self.probe()
            if self.denied_since and self.denied_for_s() >= give_up_after_s:
                log.error(
                    "Redis has refused access for %.0f s (%s): exiting",
                    self.denied_for_s(),
                    self.denied_reason,
                )
                give_up()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), PROBE_INTERVAL_S if self.ok else RECHECK_S)
