"""Recording a job's outcome in Redis, atomically with its acknowledgement.

Successes are batched: completions queue up while one flush is on the wire and go out
together in the next script call, so under load one round trip acknowledges many jobs
and at low load a job is acknowledged at once (no timer to wait out). The ``running``
marks of newly read jobs ride in the same call. A flush is a `Flush` taken with
`take_flush` and ended with `settle` (it landed) or `put_back` (it did not): the reader
sends it in one write with its next read (see `Reader`), and the acks loop sends what
the reader does not carry (while the reader blocks on an empty stream). One flush is on
the wire at a time, so a job's ``running`` mark never lands after its success.
Retries, dead letters and cancellations are rarer and go one script call each. Every
write repeats through Redis outages (`persist`); the entry stays pending until it
lands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import DONE_BUCKET_CHARS, ULID_CHARS, QueueKeys
from jobqueue.core.logs import job_fields
from jobqueue.core.wire import dead_letter_fields, utc_now_iso
from jobqueue.worker import scripts
from jobqueue.worker.hot_connection import pack
from jobqueue.worker.inflight import Delivery
from jobqueue.worker.lanes import LaneStream
from jobqueue.worker.metrics import UNKNOWN_TYPE, WorkerMetrics
from jobqueue.worker.resilience import persist
from jobqueue.worker.results import Stored

log = logging.getLogger("jobqueue.worker")
MAX_ACK_BATCH = 1000
"""Most entries per success script call (bounds the script's argument list)."""
MAX_ERROR_CHARS = 500
MAX_TRACEBACK_CHARS = 4000

Marks = dict[str, tuple[str, str, str, str]]
"""`Delivery.key` (the entry id without lanes) -> (job id, attempt, type, enqueued_at)
of jobs to mark ``running``. The attempt is text:
Lua turning a number into the string Redis stores costs more than the rest of a job's
``HSET``."""


@dataclass(slots=True)
class Succeeded:
    entry_id: str
    """`Delivery.key`: the entry id, prefixed by its lane for a lane stream."""
    job_id: str
    job_type: str
    duration_s: float
    stored: Stored | None = None
    """The handler's result (or why it was not stored), written with the success."""


@dataclass(slots=True)
class Flush:
    """One FLUSH script call: the marks and successes it carries, and its arguments."""

    running: Marks
    batch: list[Succeeded]
    keys: list[str]
    """KEYS of `scripts.FLUSH`: the stream, then the status records it names."""
    args: list[str | int | bytes]
    """ARGV of `scripts.FLUSH`."""
    packed: bytes | None = None

    def command(self) -> bytes:
        """The script call as the hot connection sends it, packed once."""
        if self.packed is None:
            self.packed = pack(("EVAL", scripts.FLUSH, len(self.keys), *self.keys, *self.args))
        return self.packed

    @property
    def freed(self) -> int:
        """Slots this flush frees once it lands."""
        return len(self.batch)


class Outcomes:
    """The atomic outcome steps of one worker; ``on_acked(entry_ids)`` frees their slots."""

    def __init__(
        self,
        redis: AsyncRedis,
        keys: QueueKeys,
        status_ttl_s: int,
        metrics: WorkerMetrics,
        on_acked: Callable[[list[str]], None],
        lanes: Sequence[LaneStream] = (),
    ) -> None:
        self.redis = redis
        self.keys = keys
        self._lane_streams = {lane.prefix[:-1]: lane.stream for lane in lanes if lane.prefix}
        """Lane name -> stream of every lane stream but the queue's own; empty without
        lanes (the flush then takes the path it always took)."""
        self.ttl_s = status_ttl_s
        self.metrics = metrics
        self.on_acked = on_acked
        self._flush_script = redis.register_script(scripts.FLUSH)
        self._ack_retry = redis.register_script(scripts.ACK_RETRY)
        self._ack_dead = redis.register_script(scripts.ACK_DEAD)
        self._ack_cancelled = redis.register_script(scripts.ACK_CANCELLED)
        self._ack_defer = redis.register_script(scripts.ACK_DEFER)
        self._batch: list[Succeeded] = []
        self._running: Marks = {}
        self._queued = 0
        """Counts changes to the queued marks and successes (`prepare` checks it)."""
        self._prepared: tuple[int, Flush] | None = None
        """The next flush, built by `prepare` while another was on the wire, with the
        `_queued` count it was built at."""
        self._on_wire: Flush | None = None
        self._stopped = False
        self._wake = asyncio.Event()
        self.successes = asyncio.Event()
        """Set when a success is queued; the reader waiting for room waits for it too."""
        self._reader_waiting = False

    def mark_running(self, deliveries: list[Delivery]) -> None:
        """Queue status ``running`` for one read batch (sent with the next flush), and
        record how long its jobs waited."""
        for d in deliveries:
            if d.job is not None:
                job = d.job
                self._running[d.key] = (
                    job.id, str(job.attempts + 1), job.type, job.enqueued_at
                )  # fmt: skip
        self._queued += 1
        self._wake.set()
        self.metrics.started(deliveries, time.time())

    def succeeded(
        self, delivery: Delivery, duration_s: float, stored: Stored | None = None
    ) -> None:
        """Queue a success (and its stored result, if any) for the next batch."""
        job = delivery.job
        assert job is not None
        self._batch.append(Succeeded(delivery.key, job.id, job.type, duration_s, stored))
        self._queued += 1
        self._wake.set()
        self.successes.set()

    @property
    def ack_due(self) -> bool:
        """Successes are queued and no flush is on the wire: a read may carry them."""
        return bool(self._batch) and self._on_wire is None

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
            if self._on_wire is not None:
                # Its end wakes us. Meanwhile the next flush is built from what is
                # queued (a read batch's jobs all ran in the loop turn before this
                # one), so whoever sends it (the reader, as soon as its read's reply
                # lands) does not build it between that reply and its next read.
                self.prepare()
                continue
            while True:
                # One turn of the loop first: jobs just started that finish at once
                # join this flush instead of needing one of their own.
                await asyncio.sleep(0)
                if self._batch and self._reader_waiting:
                    self.successes.set()  # the reader sends them, with its next read
                    break
                flush = self.take_flush()
                if flush is None:
                    break  # nothing queued, or a flush on the wire (its end wakes us)
                await self._send(flush)

    def take_flush(self) -> Flush | None:
        """The queued marks and successes as one flush, now on the wire; None if nothing
        is queued or a flush is on the wire already. End it with `settle` or
        `put_back`."""
        if self._on_wire is not None or not (self._batch or self._running):
            return None
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[0] == self._queued:
            flush = prepared[1]
        else:
            flush = self._build()
        self._batch = self._batch[len(flush.batch) :]
        self._running = {}
        self._queued += 1
        if not self._batch:
            self.successes.clear()
        self._on_wire = flush
        return flush

    def prepare(self) -> None:
        """Build the next flush from what is queued now, leaving it queued, for
        `take_flush` to send unchanged if nothing was queued since: the building (a
        few µs a job) then happens while a flush is on the wire and Redis works,
        rather than between a read's reply and the next read.

        Once per flush on the wire, and only with successes queued: with short jobs
        a read batch's successes all arrive in one loop turn, so the first build is
        the one sent; with long ones each success would invalidate a rebuild.
        """
        if self._on_wire is None or not self._batch or self._prepared is not None:
            return
        flush = self._build()
        flush.command()  # packing it is part of the work done ahead
        self._prepared = (self._queued, flush)

    def _build(self) -> Flush:
        batch, running = self._batch[:MAX_ACK_BATCH], self._running
        return Flush(running, batch, *self._flush_call(running, batch))

    def settle(self, flush: Flush, reply: Any) -> None:
        """End a flush with its script reply: free the slots of its successes, or, if
        the reply is an error, put it back and raise the error."""
        self.landed(flush, reply)
        self.release(flush)

    def landed(self, flush: Flush, reply: Any) -> None:
        """The first half of `settle`: the flush is off the wire (or, on an error
        reply, put back and the error raised); `release` must follow."""
        if isinstance(reply, Exception):
            self.put_back(flush)
            raise reply
        self._on_wire = None
        self._wake.set()

    def release(self, flush: Flush) -> None:
        """The second half of `settle`: free the slots of a landed flush's successes
        and count them."""
        entry_ids: list[str] = []
        by_type: dict[str, list[float]] = {}
        for item in flush.batch:
            entry_ids.append(item.entry_id)
            by_type.setdefault(item.job_type, []).append(item.duration_s)
        self.on_acked(entry_ids)
        for job_type, durations in by_type.items():
            self.metrics.succeeded(job_type, len(durations), durations)

    def put_back(self, flush: Flush) -> None:
        """End a flush that may not have landed: queue what it carried again (repeating
        a flush that did land changes nothing, see `scripts`)."""
        if self._on_wire is flush:
            self._on_wire = None
        self._running = {**flush.running, **self._running}
        self._batch = flush.batch + self._batch
        self._queued += 1
        self._wake.set()
        if self._batch:
            self.successes.set()

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
                while self._batch or self._running or self._on_wire is not None:
                    flush = self.take_flush()
                    if flush is None:
                        await asyncio.sleep(0.01)  # the one on the wire ends first
                    else:
                        await self._send(flush)
        except TimeoutError:
            pass

    async def _send(self, flush: Flush) -> None:
        """Send ``flush`` through the shared client, repeating through outages."""
        try:
            acked = await persist(
                lambda: self._flush_script(keys=flush.keys, args=flush.args), "acknowledge"
            )
        except BaseException:
            self.put_back(flush)
            raise
        self.settle(flush, acked)

    def _flush_call(
        self, running: Marks, batch: list[Succeeded]
    ) -> tuple[list[str], list[str | int | bytes]]:
        """The FLUSH script's keys and arguments (see `scripts.FLUSH`)."""
        keys = [self.keys.stream, self.keys.queued, self.keys.waiting, self.keys.settled]
        # Inlined per job: `QueueKeys.status` and `QueueKeys.done`.
        prefix, done_prefix = self.keys.status_prefix, self.keys.done_prefix
        done: list[str | int] = []
        started_and_done: list[str | int] = []
        buckets: dict[str, None] = {}
        running = dict(running)  # kept intact: a failed send puts it back
        take_mark = running.pop
        stored: list[str | int] = []
        values: list[bytes] = []
        now, dumps, laned = utc_now_iso(), orjson.dumps, bool(self._lane_streams)
        for item in batch:
            entry_id, job_id, result = item.entry_id, item.job_id, item.stored
            keys.append(prefix + job_id)
            at = len(keys)
            if result is not None:
                stored += (at, result[0])
                values.append(result[1])
            mark = take_mark(entry_id, None)
            if mark is None:
                done += (entry_id, at, job_id)
                continue
            _, attempt, job_type, enqueued_at = mark
            # A job with a result gets its own record: the result is its field.
            bucket = ""
            if result is None and len(job_id) == ULID_CHARS:
                bucket = done_prefix + job_id[:DONE_BUCKET_CHARS]
                buckets[bucket] = None
            # Its value in the success hash (`jobqueue.core.records.success_record`), with
            # the bare entry id (a lane's deliveries are keyed "lane/id").
            bare_id = entry_id[entry_id.find("/") + 1 :] if laned else entry_id
            success = dumps((now, attempt, bare_id, job_type, enqueued_at)).decode()
            started_and_done += (entry_id, at, bucket, job_id, success)
        marks: list[str | int] = []
        for entry_id, (job_id, attempt, job_type, enqueued_at) in running.items():
            keys.append(prefix + job_id)
            marks += (len(keys), attempt, entry_id, job_type, enqueued_at, job_id)
        keys += buckets
        args: list[str | int | bytes] = [self.keys.group, self.ttl_s, now]
        by_stream = b""
        if self._lane_streams:
            by_stream = self._per_stream(keys, marks, done, started_and_done)
        args += (orjson.dumps(marks), orjson.dumps(done), orjson.dumps(started_and_done))
        if by_stream or stored:
            args.append(by_stream)
        if stored:  # only when a handler returned something: None costs no bytes
            args.append(orjson.dumps(stored))
            args += values
        return keys, args

    def _per_stream(
        self,
        keys: list[str],
        marks: list[str | int],
        done: list[str | int],
        both: list[str | int],
    ) -> bytes:
        """With lanes: put the bare entry ids in the lists (they go into status records)
        and group them by stream for the acknowledgements, as FLUSH's lanes argument;
        the lane streams join ``keys``."""
        # Lane name ("" for the queue's own stream) -> [KEYS index, done ids, both ids].
        acks: dict[str, tuple[int, list[str], list[str]]] = {}

        def bare(items: list[str | int], at: int, step: int, which: int) -> None:
            for i in range(at, len(items), step):
                key = cast(str, items[i])
                slash = key.find("/")  # only ids of lane streams but the queue's have one
                name = ""
                if slash >= 0:
                    name, key = key[:slash], key[slash + 1 :]
                    items[i] = key
                if which:
                    lane = acks.get(name)
                    if lane is None:
                        keys.append(self._lane_streams[name] if name else self.keys.stream)
                        lane = acks[name] = (len(keys), [], [])
                    (lane[1] if which == 1 else lane[2]).append(key)

        bare(marks, 2, 6, 0)
        bare(done, 0, 3, 1)
        bare(both, 0, 5, 2)
        return orjson.dumps(list(acks.values()))

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
            self._stream(delivery),
            self.keys.delayed,
            self.keys.delayed_jobs,
            self.keys.status(job.id),
            self.keys.queued,
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
            job.type,
            job.enqueued_at,
        ]
        await persist(lambda: self._ack_retry(keys=keys, args=args), "schedule retry")
        self.on_acked([delivery.key])
        self.metrics.finished(job.type, "retried", duration_s)
        log.warning(
            "job %s (%s) attempt %d failed, retry in %.3g s: %s",
            *(job.id, job.type, job.attempts, delay_s, error),
            extra=self._log_fields(delivery, job.attempts, retry_in_s=round(delay_s, 3)),
        )

    async def defer(self, waits: list[tuple[Delivery, float]]) -> None:
        """Ack + put each job back in the delayed set, due in its seconds from now,
        attempts unchanged: a limit held it (`jobqueue.worker.limiter`). One call."""
        now_s = datetime.now(UTC).timestamp()
        keys = [self.keys.stream, self.keys.delayed, self.keys.delayed_jobs, self.keys.queued]
        jobs: list[list[str | int]] = []
        lane_keys: dict[str, int] = {}
        for delivery, wait_s in waits:
            job = delivery.job
            assert job is not None
            due = now_s + wait_s
            run_at = datetime.fromtimestamp(due, UTC).isoformat(timespec="milliseconds")
            keys.append(self.keys.status(job.id))
            fields = orjson.dumps(job.fields()).decode()
            jobs.append([delivery.entry_id, job.id, fields, int(due * 1000)])
            jobs[-1] += (run_at.replace("+00:00", "Z"), job.type, job.enqueued_at, job.attempts)
            if delivery.lane is not None and delivery.lane.prefix:
                lane_keys.setdefault(delivery.lane.stream, len(lane_keys))
                jobs[-1].append(len(waits) + 4 + lane_keys[delivery.lane.stream] + 1)
        keys += lane_keys
        args: list[str | int] = [self.keys.group, self.ttl_s, utc_now_iso()]
        args.append(orjson.dumps(jobs).decode())
        await persist(lambda: self._ack_defer(keys=keys, args=args), "defer")
        self.on_acked([d.key for d, _ in waits])

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
        stream = self._stream(delivery)  # the source stream replay returns the job to
        fields = dead_letter_fields(stream, delivery.entry_id, delivery.fields, message, made, tb)
        keys = [stream, self.keys.dead, self.keys.status(job_id), self.keys.queued]
        keys += (self.keys.waiting, self.keys.settled)
        args: list[str | int] = [self.keys.group, delivery.entry_id, message, utc_now_iso()]
        get = delivery.fields.get
        args += (self.ttl_s, made, get("type", ""), get("enqueued_at", ""), job_id)
        for name, value in fields.items():
            args += (name, value)
        await persist(lambda: self._ack_dead(keys=keys, args=args), "dead-letter")
        self.on_acked([delivery.key])
        label = job.type if job is not None and reason not in ("no_handler",) else UNKNOWN_TYPE
        self.metrics.finished(label, "dead", duration_s)
        self.metrics.dead(label, reason)
        log.error(
            "job %s (%s) dead-lettered after %d attempts: %s",
            *(job_id, delivery.fields.get("type", "?"), made, message),
            extra=self._log_fields(delivery, made, reason=reason, traceback=tb),
        )

    def _log_fields(self, delivery: Delivery, attempts: int, **more: Any) -> dict[str, Any]:
        """A log line's job fields (`job_fields`), for a delivery decoded or not."""
        get = delivery.fields.get
        job_id = delivery.job.id if delivery.job else get("id") or delivery.entry_id
        fields = job_fields(job_id, get("type", ""), self._stream(delivery), attempts, **more)
        fields.update(entry_id=delivery.entry_id, trace_id=get("trace_id"))
        return fields

    async def cancelled(self, delivery: Delivery, duration_s: float) -> None:
        """Ack + status ``cancelled`` for a job the client cancelled while it ran."""
        job = delivery.job
        assert job is not None
        stream = self._stream(delivery)
        keys = [stream, self.keys.status(job.id), self.keys.waiting, self.keys.settled]
        args: list[str | int] = [self.keys.group, delivery.entry_id, utc_now_iso(), self.ttl_s]
        await persist(lambda: self._ack_cancelled(keys=keys, args=args), "cancel")
        self.on_acked([delivery.key])
        self.metrics.finished(job.type, "cancelled", duration_s)

    async def discard(self, delivery: Delivery) -> None:
        """Ack an entry deleted while it was pending (nothing is left to run)."""
        stream, group, entry_id = self._stream(delivery), self.keys.group, delivery.entry_id
        await persist(lambda: self.redis.xack(stream, group, entry_id), "ack deleted entry")
        self.on_acked([delivery.key])

    def _stream(self, delivery: Delivery) -> str:
        """The stream ``delivery`` came from (its lane's, or the queue's own)."""
        return delivery.lane.stream if delivery.lane is not None else self.keys.stream
