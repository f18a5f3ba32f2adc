"""Running one delivered job and turning what happened into its outcome.

=================================  =============================================
the handler ...                    outcome
=================================  =============================================
returns                            succeeded (acknowledged in the next batch), its
                                   value stored as the result (`results`)
raises ``Retry(delay_s=...)``      retry after ``delay_s`` (or the backoff)
raises ``Fatal``                   dead-lettered now (reason ``fatal``)
raises anything else / times out   retry with backoff; dead once attempts are used up
fails because Redis is unhealthy   not counted: runs again, same attempt, once Redis is
                                   healthy (`jobqueue.worker.health`)
is cancelled by the client         cancelled
=================================  =============================================

A failure stays inside its own task: other jobs in flight never notice it. Jobs that
were running when a worker died run one at a time (`solo`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.errors import Fatal, Retry
from jobqueue.core.logs import job_fields
from jobqueue.core.wire import Job
from jobqueue.worker.app import App, HandlerSpec, JobContext
from jobqueue.worker.backoff import Backoff
from jobqueue.worker.health import RedisHealth
from jobqueue.worker.inflight import Delivery, InFlight
from jobqueue.worker.outcomes import Outcomes
from jobqueue.worker.payloads import parse_payload
from jobqueue.worker.results import encode_result
from jobqueue.worker.settings import WorkerSettings
from jobqueue.worker.solo import SoloGate

log = logging.getLogger("jobqueue.worker")


class Executor:
    """Runs deliveries with the app's handlers and records each outcome."""

    def __init__(
        self,
        app: App,
        settings: WorkerSettings,
        redis: AsyncRedis,
        outcomes: Outcomes,
        health: RedisHealth,
        solo: SoloGate,
    ) -> None:
        self.app = app
        self.settings = settings
        self.redis = redis
        self.outcomes = outcomes
        self.health = health
        self.held = 0
        """Attempts not counted because Redis failed them, since start."""
        self.solo = solo
        self.default_backoff = Backoff(base_s=settings.backoff_base_s, cap_s=settings.backoff_cap_s)
        # Sync handlers run here, off the event loop; one thread per slot at most.
        self.pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="jobqueue-job")
        # Read once: per-job DEBUG lines must cost nothing when DEBUG is off.
        self.debug = log.isEnabledFor(logging.DEBUG)
        # Per-job lookups hoisted: the dict itself, so handlers registered later count.
        self.handlers = app.handlers
        self.job_timeout_s = settings.job_timeout_s
        self.result_max_bytes = settings.result_max_bytes
        # Frees the slot of an entry whose outcome could not be recorded.
        self.release = outcomes.on_acked

    async def run(self, delivery: Delivery) -> None:
        """Run one delivery to its recorded outcome (a task per delivery).

        A failure that Redis caused (it was refusing writes or unreachable during the
        attempt) is not counted: the job waits in this worker, still pending, until
        Redis is healthy, and runs again as the same attempt. An outcome that cannot be
        recorded (not an outage: those are retried) is logged and its slot freed; the
        entry stays pending in Redis and is reclaimed once its claim goes stale. Guarded
        here, not by a wrapping task body: one coroutine less per job.
        """
        job = delivery.job
        assert job is not None
        try:
            spec = self.handlers.get(job.type)
            if spec is None:
                error = f"no handler for type {job.type!r}"
                await self.outcomes.dead(delivery, "no_handler", error)
                return
            data = None
            if spec.payload is not None:
                data = parse_payload(spec.payload, job.payload)
                if isinstance(data, str):  # refused: it would fail the same way every time
                    await self.outcomes.dead(delivery, "invalid_payload", data)
                    return
            held_here = 0
            while True:
                started = time.monotonic()
                failed = await self._attempt(delivery, spec, data, started)
                if failed is None or not await self._held(delivery, failed, started, held_here):
                    break
                held_here += 1
            if failed is not None:
                await self._failed(delivery, spec, failed, time.monotonic() - started)
        except Exception:
            log.exception("entry %s: outcome not recorded", delivery.entry_id)
            self.release([delivery.key])

    async def _held(
        self, delivery: Delivery, error: Exception, started: float, held_before: int
    ) -> bool:
        """True if Redis caused ``error`` (the attempt is not counted): back once Redis
        is healthy, to run it again as the same attempt."""
        job = delivery.job
        assert job is not None
        if isinstance(error, Fatal | Retry):  # the handler decided
            return False
        if not await self.health.blames_redis(error, started, first=not held_before):
            return False
        log.warning(
            "job %s (%s) attempt %d failed while Redis was unavailable (%s: %s);"
            " not counted, it runs again once Redis is back",
            *(job.id, job.type, job.attempts + 1, type(error).__name__, error),
            # A JSON line says so in a field: the handler's own writes before the error
            # may have landed, so this is a run that may repeat side effects.
            extra={**self._log_fields(job), "redis_unavailable": True},
        )
        self.held += 1
        await self.health.wait_healthy()
        delivery.timed_out = False
        return True

    async def _attempt(
        self, delivery: Delivery, spec: HandlerSpec, data: Any, started: float
    ) -> Exception | None:
        """Run the handler once, from ``started`` (`time.monotonic`). None when it
        succeeded (queued for acknowledgement) or the client cancelled it (recorded);
        else its failure, a job timeout being a `TimeoutError`. Cancelled when the
        worker stops: the entry stays pending."""
        job = delivery.job
        assert job is not None
        timeout_s = spec.timeout_s or self.job_timeout_s
        ctx = JobContext(job=job, entry_id=delivery.entry_id, redis=self.redis, data=data)
        if self.debug:
            log.debug(
                "job %s (%s) attempt %d started",
                *(job.id, job.type, job.attempts + 1),
                extra=self._log_fields(job),
            )
        # One clock read per job: its deadline, its duration and Redis's blame all
        # count from it (monotonic has perf_counter's resolution on Linux).
        delivery.deadline = started + timeout_s
        delivery.handler_running = True
        try:
            if spec.is_async:
                value = await spec.fn(ctx)  # type: ignore[misc]
            else:
                value = await asyncio.get_running_loop().run_in_executor(self.pool, spec.fn, ctx)
        except asyncio.CancelledError:
            delivery.handler_running = False
            if delivery.timed_out:
                _uncancel()
                return TimeoutError(f"timed out after {timeout_s:g} s")
            if delivery.cancel_requested:
                _uncancel()
                await self.outcomes.cancelled(delivery, time.monotonic() - started)
                return None
            raise  # the worker is stopping: leave the entry pending for reclaim
        except Exception as exc:  # any handler error is a failed attempt
            delivery.handler_running = False
            return exc
        delivery.handler_running = False
        duration_s = time.monotonic() - started
        if value is None:  # most handlers return nothing: no call to store nothing
            self.outcomes.succeeded(delivery, duration_s)
        else:
            stored = encode_result(job, value, self.result_max_bytes)
            self.outcomes.succeeded(delivery, duration_s, stored)
        if self.debug:
            log.debug("job %s (%s) succeeded", job.id, job.type, extra=self._log_fields(job))
        return None

    def _log_fields(self, job: Job) -> dict[str, Any]:
        stream, attempt = self.settings.queue.stream, job.attempts + 1
        return job_fields(job.id, job.type, stream, attempt, trace_id=job.extra.get("trace_id"))

    async def run_alone(self, delivery: Delivery) -> None:
        """Run a suspect (a worker died running it) once no other suspect runs here."""
        async with self.solo.alone(delivery):
            await self.run(delivery)

    async def _failed(
        self,
        delivery: Delivery,
        spec: HandlerSpec,
        exc: Exception,
        duration_s: float,
    ) -> None:
        job = delivery.job
        assert job is not None
        made = job.attempts + 1
        error = f"{type(exc).__name__}: {exc}"
        tb = "".join(traceback.format_exception(exc, limit=-8))
        if isinstance(exc, Fatal):
            await self.outcomes.dead(
                delivery, "fatal", error, attempts=made, traceback=tb, duration_s=duration_s
            )
            return
        max_attempts = spec.max_attempts or self.settings.max_attempts
        if made >= max_attempts:
            error = f"attempts exhausted ({made}/{max_attempts}), last error: {error}"
            await self.outcomes.dead(
                delivery, "attempts", error, attempts=made, traceback=tb, duration_s=duration_s
            )
            return
        delay_s = exc.delay_s if isinstance(exc, Retry) else None
        if delay_s is None:
            delay_s = (spec.backoff or self.default_backoff).delay_s(made)
        await self.outcomes.retry(delivery, error, delay_s, duration_s)

    def close(self) -> None:
        # Threads still running a timed-out sync handler cannot be interrupted; do not
        # wait for them.
        self.pool.shutdown(wait=False, cancel_futures=True)


def cancel_overdue(inflight: InFlight, now: float) -> int:
    """Cancel every handler running past its deadline (`time.monotonic` seconds);
    each becomes a failed attempt. Returns how many.

    One sweep over the in-flight jobs every tick costs far less than a timer per job.
    """
    overdue = 0
    for d in inflight.deliveries.values():
        if d.handler_running and not d.timed_out and now > d.deadline and d.task is not None:
            d.timed_out = True
            d.task.cancel()
            overdue += 1
    return overdue


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
