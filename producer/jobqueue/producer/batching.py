"""Coalescing the single-job enqueues of concurrent requests into one script call.

While one enqueue is on its way to Redis, the jobs of newer ``POST /jobs`` requests wait
and then go together in the next call; an idle producer sends each job at once, so
nothing waits for a timer. Under load this turns N round trips into about one, which
is most of what a single-job request costs besides HTTP itself.

Each job keeps its own outcome (`AsyncClient.enqueue_each`): a job that cannot be
encoded or that Redis refuses answers its own request, never the others sharing the
round trip. Each job also keeps its own deadline: one whose request gave up before it
was sent is never sent (`NotSent`), and one that was sent when its deadline came is
`OutcomeUnknown`; the script writes nothing once the call's deadline has passed by
Redis's clock, so such a job lands only if Redis ran the call in time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from itertools import chain

from jobqueue.core.client import AsyncClient, Enqueued, NewJob

MAX_JOBS_PER_CALL = 500
NO_DEADLINE = float("inf")
SWEEP_EVERY_S = 0.02
"""Deadlines are checked by one timer for all requests, at most this often: a request
may give up this much after its deadline, and no request pays for a timer of its own.
The timer scans the jobs not yet answered (waiting, and the call on the wire), so a
request costs no bookkeeping of its own; under load it fires about once per deadline
span (the earliest unanswered job is always a fresh one), over a few hundred jobs."""


class NotSent(Exception):
    """The deadline came before the job was handed to Redis: it was not enqueued."""


class OutcomeUnknown(Exception):
    """The deadline came while the job's call was with Redis: it may have been enqueued."""


@dataclass(eq=False, slots=True)
class _Waiting:
    job: NewJob
    deadline: float
    """Loop time the request gives up."""
    not_after_ms: int
    """The same instant in epoch milliseconds, for Redis's clock."""
    future: asyncio.Future[Enqueued | Exception] = field(repr=False)
    sent: bool = False


class EnqueueBatcher:
    """Enqueues jobs through ``client``, many concurrent ones per round trip."""

    def __init__(self, client: AsyncClient, max_jobs: int = MAX_JOBS_PER_CALL) -> None:
        self._client = client
        self._max_jobs = max_jobs
        self._waiting: list[_Waiting] = []
        self._in_flight: list[_Waiting] = []
        """The jobs of the call with Redis now (one at a time: `_drain` awaits each)."""
        self._drainer: asyncio.Task[None] | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_at = NO_DEADLINE

    @property
    def waiting(self) -> int:
        """Jobs not yet handed to Redis."""
        return len(self._waiting)

    async def enqueue(self, job: NewJob, deadline: float | None = None) -> Enqueued:
        """Enqueue one job by ``deadline`` (loop time; None = no deadline). Raises what
        enqueueing it raised (`InvalidNewJob`, Redis errors), or `NotSent` /
        `OutcomeUnknown` when the deadline came first."""
        loop = asyncio.get_running_loop()
        if deadline is None:
            item = _Waiting(job, NO_DEADLINE, 0, loop.create_future())
        else:
            not_after_ms = int((time.time() + deadline - loop.time()) * 1000)
            item = _Waiting(job, deadline, not_after_ms, loop.create_future())
            if deadline < self._sweep_at:
                self._sweep_by(loop, deadline)
        self._waiting.append(item)
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        outcome = await item.future
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _sweep_by(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._sweeper = loop.call_at(when, self._sweep)
        self._sweep_at = when

    def _sweep(self) -> None:
        """Answer every job whose deadline has passed, then wait for the next one."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._sweeper, self._sweep_at = None, NO_DEADLINE
        earliest = NO_DEADLINE
        for item in chain(self._waiting, self._in_flight):
            if item.future.done():
                continue
            if item.deadline <= now:
                item.future.set_result(OutcomeUnknown() if item.sent else NotSent())
            elif item.deadline < earliest:
                earliest = item.deadline
        if earliest != NO_DEADLINE:
            self._sweep_by(loop, max(earliest, now + SWEEP_EVERY_S))

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_jobs]
                del self._waiting[: self._max_jobs]
                self._in_flight = batch
                await self._send(batch)
                self._in_flight = []
        finally:
            self._in_flight = []
            self._drainer = None

    async def _send(self, batch: list[_Waiting]) -> None:
        # A request that went away or gave up is answered already: its job is not sent.
        batch = [item for item in batch if not item.future.done()]
        if not batch:
            return
        for item in batch:
            item.sent = True
        deadlines = [item.not_after_ms for item in batch]
        not_after_ms = 0 if 0 in deadlines else min(deadlines)
        try:
            # Nobody waits for the call past the last request's deadline: cancelling it
            # drops its connection, so a hung Redis never stalls the jobs behind it.
            last = max(item.deadline for item in batch)
            async with asyncio.timeout_at(None if last == NO_DEADLINE else last):
                outcomes = await self._client.enqueue_each(
                    [item.job for item in batch], not_after_ms=not_after_ms
                )
        except Exception as exc:  # the call itself failed (or timed out): all hear it
            outcomes = [exc] * len(batch)
        for item, outcome in zip(batch, outcomes, strict=True):
            if not item.future.done():
                item.future.set_result(outcome)
