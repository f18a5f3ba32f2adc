"""Recording a job's outcome in Redis, atomically with its acknowledgement.

Successes are batched: completions queue up while one flush is on the wire and go out
together in the next script call, so under load one round trip acknowledges many jobs
and at low load a job is acknowledged at once (no timer to wait out). The ``running``
marks of newly read jobs ride in the same call. When the reader waits for room, it
sends the flush itself, pipelined with its next read (`flush_with`): one socket write
and one round trip instead of two. One flush is on the wire at a time, so a job's
``running`` mark never lands after its success. Retries, dead letters and cancellations
are rarer and go one script call each. Every write repeats
through Redis outages (`persist`); the entry stays pending until it lands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.client import Pipeline

from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import dead_letter_fields, utc_now_iso
from jobqueue.worker import scripts
from jobqueue.worker.inflight import Delivery
from jobqueue.worker.metrics import UNKNOWN_TYPE, WorkerMetrics
from jobqueue.worker.resilience import TRANSIENT_ERRORS, persist

MAX_ACK_BATCH = 1000
"""Most entries per success script call (bounds the script's argument list)."""
MAX_ERROR_CHARS = 500
MAX_TRACEBACK_CHARS = 4000


@dataclass(slots=True)
class Succeeded:
    entry_id: str
    job_id: str
    job_type: str
    duration_s: float


class Outcomes:
    """The atomic outcome steps of one worker; ``on_acked(entry_ids)`` frees their slots."""

    def __init__(
        self,
        redis: AsyncRedis,
        keys: QueueKeys,
        status_ttl_s: int,
        metrics: WorkerMetrics,
        on_acked: Callable[[list[str]], None],
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = status_ttl_s
        self.metrics = metrics
        self.on_acked = on_acked
        self._flush_script = redis.register_script(scripts.FLUSH)
        self._ack_retry = redis.register_script(scripts.ACK_RETRY)
        self._ack_dead = redis.register_script(scripts.ACK_DEAD)
        self._ack_cancelled = redis.register_script(scripts.ACK_CANCELLED)
        self._batch: list[Succeeded] = []
        self._running: dict[str, tuple[str, int, str]] = {}
        """Entry id -> (job id, attempt, type) of jobs to mark ``running``."""
        self._stopped = False
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self.successes = asyncio.Event()
        """Set when a success is queued; the reader waiting for room waits for it too."""
        self._reader_waiting = False

    def mark_running(self, deliveries: list[Delivery]) -> None:
        """Queue status ``running`` for one read batch (sent with the next flush)."""
        for d in deliveries:
            if d.job is not None:
                self._running[d.entry_id] = (d.job.id, d.job.attempts + 1, d.job.type)
        self._wake.set()

    def succeeded(self, delivery: Delivery, duration_s: float) -> None:
        """Queue a success for the next acknowledgement batch."""
        job = delivery.job
        assert job is not None
        self._batch.append(Succeeded(delivery.entry_id, job.id, job.type, duration_s))
        self._wake.set()
        self.successes.set()

    @property
    def ack_due(self) -> bool:
        """Successes are queued and no flush is on the wire: `flush_with` may send them."""
        return bool(self._batch) and not self._flushing.locked()

    def reader_waiting(self, waiting: bool) -> None:
        """The reader waits for room (True) and will send the next flush with its read;
        until it stops waiting, the acks loop leaves queued successes to it."""
        self._reader_waiting = waiting
        if not waiting:
            self._wake.set()  # whatever the reader did not take, the acks loop sends

    async def run_acks(self) -> None:
        """Flush queued running marks and successes until cancelled (stopped last)."""
        while not self._stopped:
            await self._wake.wait()
            self._wake.clear()
            while True:
                # One turn of the loop first: jobs just started that finish at once
                # join this flush instead of needing one of their own.
                await asyncio.sleep(0)
                if not (self._batch or self._running):
                    break
                if self._batch and self._reader_waiting:
                    self.successes.set()  # the reader sends them, with its next read
                    break
                async with self._flushing:
                    running, batch = self._take()
                    await self._flush(running, batch)

    async def flush_with(self, extend: Callable[[Pipeline, int], bool]) -> Any:
        """Send the queued marks and successes in one pipeline with the command that
        ``extend(pipe, freed)`` appends (``freed``: slots this flush frees; it returns
        False if it appended nothing). Returns that command's reply, or None.

        Call only when `ack_due`. On a transient Redis error the marks and successes go
        back to the queue (the acks loop repeats them) and the error is raised.
        """
        async with self._flushing:
            running, batch = self._take()
            args, by_type = self._flush_args(running, batch)
            async with self.redis.pipeline(transaction=False) as pipe:
                # EVAL, not EVALSHA: a pipeline cannot reload a script Redis lost in a
                # restart without losing the read; Redis caches the compiled script.
                pipe.eval(scripts.FLUSH, 1, self.keys.stream, *args)
                extended = extend(pipe, len(batch))
                try:
                    replies = await pipe.execute(raise_on_error=False)
                except TRANSIENT_ERRORS:
                    self._put_back(running, batch)
                    raise
            if isinstance(replies[0], Exception):
                self._put_back(running, batch)
                raise replies[0]
            self._settle(batch, by_type)
        reply = replies[1] if extended else None
        if isinstance(reply, Exception):
            raise reply
        return reply

    def stop(self) -> None:
        """End `run_acks` after its current flush (what is left stays pending)."""
        self._stopped = True
        self._wake.set()

    async def flush_left(self, timeout_s: float) -> None:
        """At shutdown, acknowledge the successes still queued in memory, within
        ``timeout_s``: a job that finished must not run again after a restart just
        because the process stopped before its flush. What does not make it (Redis
        away, time up) stays pending, as for a crash."""
        try:
            async with asyncio.timeout(timeout_s):
                while self._batch or self._running:
                    async with self._flushing:
                        running, batch = self._take()
                        await self._flush(running, batch)
        except TimeoutError:
            pass

    def _take(self) -> tuple[dict[str, tuple[str, int, str]], list[Succeeded]]:
        batch, self._batch = self._batch[:MAX_ACK_BATCH], self._batch[MAX_ACK_BATCH:]
        running, self._running = self._running, {}
        if not self._batch:
            self.successes.clear()
        return running, batch

    def _put_back(self, running: dict[str, tuple[str, int, str]], batch: list[Succeeded]) -> None:
        self._running = {**running, **self._running}
        self._batch = batch + self._batch
        self._wake.set()
        if self._batch:
            self.successes.set()

    async def _flush(
        self, running: dict[str, tuple[str, int, str]], batch: list[Succeeded]
    ) -> None:
        args, by_type = self._flush_args(running, batch)
        keys = [self.keys.stream]
        await persist(lambda: self._flush_script(keys=keys, args=args), "acknowledge")
        self._settle(batch, by_type)

    def _flush_args(
        self, running: dict[str, tuple[str, int, str]], batch: list[Succeeded]
    ) -> tuple[list[str | int | bytes], dict[str, list[float]]]:
        """The FLUSH script's arguments, and the batch's durations by job type."""
        done: list[str] = []
        started_and_done: list[str | int] = []
        by_type: dict[str, list[float]] = {}
        running = dict(running)  # kept intact: a failed send puts it back
        for item in batch:
            mark = running.pop(item.entry_id, None)
            if mark is None:
                done += (item.entry_id, item.job_id)
            else:
                started_and_done += (item.entry_id, item.job_id, mark[1], mark[2])
            by_type.setdefault(item.job_type, []).append(item.duration_s)
        marks: list[str | int] = []
        for entry_id, (job_id, attempt, job_type) in running.items():
            marks += (job_id, attempt, entry_id, job_type)
        args: list[str | int | bytes] = [self.keys.group, self.keys.status_prefix, self.ttl_s]
        args += (utc_now_iso(), orjson.dumps(marks), orjson.dumps(done))
        args.append(orjson.dumps(started_and_done))
        return args, by_type

    def _settle(self, batch: list[Succeeded], by_type: dict[str, list[float]]) -> None:
        self.on_acked([item.entry_id for item in batch])
        for job_type, durations in by_type.items():
            self.metrics.succeeded(job_type, len(durations), durations)

    async def retry(
        self, delivery: Delivery, error: str, delay_s: float, duration_s: float
    ) -> None:
        """Ack + schedule the next attempt ``delay_s`` from now in the delayed set."""
        job = delivery.job
        assert job is not None
        job.attempts += 1
        due = datetime.now(UTC).timestamp() + delay_s
        run_at = datetime.fromtimestamp(due, UTC).isoformat(timespec="milliseconds")
        keys = [
            self.keys.stream,
            self.keys.delayed,
            self.keys.delayed_jobs,
            self.keys.status(job.id),
        ]
        args: list[str | int] = [
            self.keys.group,
            delivery.entry_id,
            job.id,
            orjson.dumps(job.fields()).decode(),
            int(due * 1000),
            utc_now_iso(),
            run_at.replace("+00:00", "Z"),
            error[:MAX_ERROR_CHARS],
            job.attempts,
            self.ttl_s,
        ]
        await persist(lambda: self._ack_retry(keys=keys, args=args), "schedule retry")
        self.on_acked([delivery.entry_id])
        self.metrics.finished(job.type, "retried", duration_s)

    async def dead(
        self,
        delivery: Delivery,
        reason: str,
        error: str,
        *,
        attempts: int | None = None,
        traceback: str | None = None,
        duration_s: float | None = None,
    ) -> None:
        """Ack + dead-letter entry (SPEC §2 fields); ``reason`` is the metric's label."""
        job = delivery.job
        job_id = job.id if job is not None else (delivery.fields.get("id") or delivery.entry_id)
        made = attempts if attempts is not None else (job.attempts if job else 0)
        message = f"{reason}: {error}"[:MAX_ERROR_CHARS]
        tb = traceback[-MAX_TRACEBACK_CHARS:] if traceback else None
        fields = dead_letter_fields(
            self.keys.stream, delivery.entry_id, delivery.fields, message, made, tb
        )
        keys = [self.keys.stream, self.keys.dead, self.keys.status(job_id)]
        args: list[str | int] = [self.keys.group, delivery.entry_id, message, utc_now_iso()]
        args += (self.ttl_s, made)
        for name, value in fields.items():
            args += (name, value)
        await persist(lambda: self._ack_dead(keys=keys, args=args), "dead-letter")
        self.on_acked([delivery.entry_id])
        label = job.type if job is not None and reason not in ("no_handler",) else UNKNOWN_TYPE
        self.metrics.finished(label, "dead", duration_s)
        self.metrics.dead(label, reason)

    async def cancelled(self, delivery: Delivery, duration_s: float) -> None:
        """Ack + status ``cancelled`` for a job the client cancelled while it ran."""
        job = delivery.job
        assert job is not None
        keys = [self.keys.stream, self.keys.status(job.id)]
        args: list[str | int] = [self.keys.group, delivery.entry_id, utc_now_iso(), self.ttl_s]
        await persist(lambda: self._ack_cancelled(keys=keys, args=args), "cancel")
        self.on_acked([delivery.entry_id])
        self.metrics.finished(job.type, "cancelled", duration_s)

    async def discard(self, delivery: Delivery) -> None:
        """Ack an entry deleted while it was pending (nothing is left to run)."""
        stream, group, entry_id = self.keys.stream, self.keys.group, delivery.entry_id
        await persist(lambda: self.redis.xack(stream, group, entry_id), "ack deleted entry")
        self.on_acked([entry_id])
