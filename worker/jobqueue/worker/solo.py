"""Suspects run one at a time: a job that was running when a worker died.

A worker that dies takes every job it was running with it, and crash accounting
(`crashes`) cannot tell which of them killed it, so each job it had started is blamed
once and becomes a *suspect*. A worker runs its suspects one at a time, and before a
suspect's handler starts it records the suspect in Redis (``{stream}:solo``, the solo
record of the suspect's own lane stream with lanes: one suspect runs at a time across
all lanes). A death
then blames that one suspect and the jobs that were not suspects yet, never the
suspects waiting for their turn. So each innocent job is blamed at most once for
someone else's crash, while a poison job is blamed for every crash it causes and
reaches ``max_deliveries``.

One at a time per process, not per engine: a worker of a partitioned queue runs one
engine per partition, and a process's death blames each engine's running suspect. If
every engine ran a suspect of its own, an innocent suspect of one partition would be
blamed for each crash a poison suspect of another caused while it ran, until it reached
``max_deliveries`` (seen in the chaos run with 3 partitions). So the engines of one
process share one turn (`SoloGate` ``turn``); each records its suspect in its own
partition's ledger.

Jobs that are no suspects keep running beside a suspect: a poison job costs the worker
its other jobs' progress on each crash, not its throughput in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from jobqueue.worker.crashes import CrashLedger
from jobqueue.worker.inflight import Delivery
from jobqueue.worker.resilience import TRANSIENT_ERRORS

log = logging.getLogger("jobqueue.worker")
UNAVAILABLE: tuple[type[Exception], ...] = (TimeoutError, *TRANSIENT_ERRORS)
END_TIMEOUT_S = 5.0
"""Longest wait for the end of a suspect's run to be recorded, seconds (with Redis
away, the stale record only spares the next crash's suspect one count)."""


class SoloGate:
    """Lets this worker's suspects run one at a time, each recorded while it runs."""

    def __init__(self, ledger: CrashLedger, turn: asyncio.Lock | None = None) -> None:
        """``turn``: the lock the suspects wait for, shared by every engine of a process
        (`jobqueue.worker.partitioned`); else one of its own."""
        self.ledger = ledger
        self._turn = turn or asyncio.Lock()

    @contextlib.asynccontextmanager
    async def alone(self, delivery: Delivery) -> AsyncIterator[None]:
        """Run the body as this worker's only running suspect, recorded in Redis."""
        # The record goes to the crash ledger of the suspect's own stream.
        ledger = delivery.lane.ledger if delivery.lane is not None else self.ledger
        async with self._turn:
            await ledger.begin_solo(delivery.entry_id)
            log.info(
                "entry %s: a worker died running it %d time(s); running it as the suspect",
                delivery.entry_id,
                delivery.crashes,
            )
            try:
                yield
            finally:
                await self._end(ledger)

    async def _end(self, ledger: CrashLedger) -> None:
        try:
            async with asyncio.timeout(END_TIMEOUT_S):
                await ledger.end_solo()
        except UNAVAILABLE:
            log.warning("could not record the end of a suspect's run (Redis unavailable)")
