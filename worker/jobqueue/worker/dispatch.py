"""Turning delivered entries into running jobs: decode, check, register, start.

Every entry the reader gets is registered in `InFlight` at once (that is what keeps the
pending list within ``concurrency``). Then, per entry:

- fields gone (the entry was deleted while pending): acknowledged away;
- breaks the wire format: dead-lettered with the reason (``malformed``);
- started ``max_deliveries`` times by workers that then died (it keeps killing
  workers, see `crashes`): dead-lettered (``deliveries``);
- otherwise marked ``running`` (one script call for the batch) and run as its own task;
  one suspect at a time (`solo`) if a worker died running it before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from functools import partial
from typing import Any

from jobqueue.core.errors import MalformedJob
from jobqueue.core.wire import decode
from jobqueue.worker.execution import Executor
from jobqueue.worker.inflight import Delivery, InFlight
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
    ) -> None:
        self.max_deliveries = settings.max_deliveries
        self.inflight = inflight
        self.executor = executor
        self.outcomes = outcomes

    async def dispatch(self, entries: list[Entry]) -> None:
        # loop.create_task: asyncio.create_task would look the loop up once per job.
        spawn = partial(self._spawn, asyncio.get_running_loop())
        runnable: list[Delivery] = []
        held = self.inflight.deliveries
        for entry_id, fields, crashes in entries:
            if entry_id in held:
                continue
            delivery = Delivery(entry_id, fields)
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
        if runnable:
            run, run_alone = self.executor.run, self.executor.run_alone
            for delivery in runnable:
                spawn(delivery, run_alone(delivery) if delivery.crashes else run(delivery))
            # Queued after the tasks, so jobs that finish at once share the flush.
            self.outcomes.mark_running(runnable)

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
            self.inflight.release([delivery.entry_id])
