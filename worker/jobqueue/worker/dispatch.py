"""Turning delivered entries into running jobs: decode, check, register, start.

Every entry the reader gets is registered in `InFlight` at once (that is what keeps the
pending list within ``concurrency``). Then, per entry:

- fields gone (the entry was deleted while pending): acknowledged away;
- breaks the wire format: dead-lettered with the reason (``malformed``);
- started ``max_deliveries`` times by workers that then died (it keeps killing
  workers, see `crashes`): dead-lettered (``deliveries``);
- otherwise marked ``running`` (one script call for the batch) and run as its own task;
  one suspect at a time (`solo`) if a worker died running it before.

When limits are configured, the runnable jobs of a batch first pass the `Limiter` (one
script call for the batch, only when it holds a limited type): a job it holds back is
put back in the delayed set (one script call), a granted one may wait its start here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from functools import partial
from typing import Any

from jobqueue.core.errors import MalformedJob
from jobqueue.core.wire import decode
from jobqueue.worker.execution import Executor
from jobqueue.worker.inflight import Delivery, InFlight
from jobqueue.worker.lanes import LaneStream
from jobqueue.worker.limiter import Limiter
from jobqueue.worker.outcomes import Outcomes
from jobqueue.worker.reader import Entry
from jobqueue.worker.settings import WorkerSettings

log = logging.getLogger("jobqueue.worker")


class Dispatcher:
    """Starts one task per delivered entry."""

    def __init__(
        self,
        settings: WorkerSettings,
        inflight: InFlight,
        executor: Executor,
        outcomes: Outcomes,
        limiter: Limiter | None = None,
    ) -> None:
        self.max_deliveries = settings.max_deliveries
        self.inflight = inflight
        self.executor = executor
        self.outcomes = outcomes
        self.limiter = limiter

    async def dispatch(self, entries: list[Entry], lane: LaneStream | None = None) -> None:
        """Start the entries of one stream: ``lane``'s, or (None) the queue's own."""
        # loop.create_task: asyncio.create_task would look the loop up once per job.
        spawn = partial(self._spawn, asyncio.get_running_loop())
        runnable: list[Delivery] = []
        held = self.inflight.deliveries
        prefix = ""
        if lane is not None:
            prefix = lane.prefix
            if lane.name:
                self.outcomes.metrics.lane_deliveries[lane.index].inc(len(entries))
        for entry_id, fields, crashes in entries:
            if (prefix + entry_id if prefix else entry_id) in held:
                continue
            delivery = Delivery(entry_id, fields, None, lane)
            self.inflight.add(delivery)
            if not fields:
                spawn(delivery, self.outcomes.discard(delivery))
                continue
            try:
                delivery.job = decode(entry_id, fields)
            except MalformedJob as exc:
                spawn(delivery, self.outcomes.dead(delivery, "malformed", exc.reason))
                continue
            if crashes >= self.max_deliveries:
                reason = (
                    f"started {crashes} times by workers that died"
                    f" (max_deliveries={self.max_deliveries}): the job keeps killing its worker"
                )
                spawn(delivery, self.outcomes.dead(delivery, "deliveries", reason))
                continue
            delivery.crashes = crashes
            runnable.append(delivery)
        if runnable and self.limiter is not None:
            runnable = await self._admit(runnable, spawn)
        if runnable:
            # `Executor.run` guards itself: its task needs no `_guarded` wrapper.
            create_task, run = asyncio.get_running_loop().create_task, self.executor.run
            for delivery in runnable:
                if delivery.crashes:
                    spawn(delivery, self.executor.run_alone(delivery))
                else:
                    delivery.task = create_task(run(delivery))
            # Queued after the tasks, so jobs that finish at once share the flush.
            self.outcomes.mark_running(runnable)

    async def _admit(self, runnable: list[Delivery], spawn: partial[None]) -> list[Delivery]:
        """The deliveries to run now; the others wait (held here, or delayed)."""
        limiter = self.limiter
        assert limiter is not None
        limited = {d.key for d in runnable if d.job is not None and limiter.limited(d.job.type)}
        if not limited:
            return runnable
        try:
            admission = await limiter.admit(runnable)
        except Exception:
            # Not an outage (`persist` waits those out): the limiter cannot decide. Jobs
            # of limited types stay pending, out of this worker's hands, to be reclaimed
            # once idle; the others run, and the read loop goes on.
            log.exception("limiter failed: %d job(s) left pending for reclaim", len(limited))
            self.inflight.release(list(limited))
            return [d for d in runnable if d.key not in limited]
        if admission.deferred:
            waits = [(d, due_s) for d, due_s, _ in admission.deferred]
            task = asyncio.get_running_loop().create_task(self._defer(waits))
            for d, _ in waits:
                d.task = task
        for delivery, start_s in admission.granted:
            if delivery.key in limiter.held or start_s:
                spawn(delivery, self._limited(limiter, delivery, start_s))
            else:
                spawn(delivery, self._run(delivery))
        self.outcomes.mark_running([d for d, _ in admission.granted])
        return []

    async def _limited(self, limiter: Limiter, delivery: Delivery, start_s: float) -> None:
        # Held until the start the limiter gave it (wall clock: Redis's and ours agree to
        # NTP's precision); its lease goes back once it ran. No await between the check
        # for lateness and the handler's start.
        try:
            if start_s:
                await asyncio.sleep(max(0.0, start_s - time.time()))
                if limiter.late(delivery, start_s):
                    await self._defer([(delivery, 0.0)])
                    return
            await self._run(delivery)
        finally:
            limiter.release(delivery)

    def _run(self, delivery: Delivery) -> Coroutine[Any, Any, None]:
        if delivery.crashes:
            return self.executor.run_alone(delivery)
        return self.executor.run(delivery)

    async def _defer(self, waits: list[tuple[Delivery, float]]) -> None:
        try:
            await self.outcomes.defer(waits)
        except Exception:
            log.exception("%d throttled entries not put back: left pending", len(waits))
            self.inflight.release([d.key for d, _ in waits])

    def _spawn(
        self,
        loop: asyncio.AbstractEventLoop,
        delivery: Delivery,
        work: Coroutine[Any, Any, None],
    ) -> None:
        delivery.task = loop.create_task(self._guarded(delivery, work))

    async def _guarded(self, delivery: Delivery, work: Coroutine[Any, Any, None]) -> None:
        # Awaiting inside the task costs less than a done-callback per job.
        try:
            await work
        except Exception:
            # The outcome could not be recorded (not a Redis outage: those are retried).
            # The entry stays pending in Redis and is reclaimed once its claim goes stale.
            log.exception("entry %s: outcome not recorded", delivery.entry_id)
            self.inflight.release([delivery.key])
