"""Coalescing the single-job enqueues of concurrent requests into one script call.

While one enqueue is on its way to Redis, the jobs of newer ``POST /jobs`` requests wait
and then go together in the next call; an idle producer sends each job at once, so
nothing waits for a timer. Under load this turns N round trips into about one, which
is most of what a single-job request costs besides HTTP itself. Each job still gets its
own answer (or its own error), in arrival order.
"""

from __future__ import annotations

import asyncio

from jobqueue.core.client import AsyncClient, Enqueued, InvalidNewJob, NewJob
from jobqueue.core.errors import EnqueueUnconfirmed

MAX_JOBS_PER_CALL = 500


class EnqueueBatcher:
    """Enqueues jobs through ``client``, many concurrent ones per round trip."""

    def __init__(self, client: AsyncClient, max_jobs: int = MAX_JOBS_PER_CALL) -> None:
        self._client = client
        self._max_jobs = max_jobs
        self._waiting: list[tuple[NewJob, asyncio.Future[Enqueued]]] = []
        self._drainer: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Jobs not yet handed to Redis."""
        return len(self._waiting)

    async def enqueue(self, job: NewJob) -> Enqueued:
        """Enqueue one job; raises what enqueueing it raised (`InvalidNewJob`, Redis errors)."""
        future: asyncio.Future[Enqueued] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_jobs]
                del self._waiting[: self._max_jobs]
                await self._send(batch)
        finally:
            self._drainer = None

    async def _send(self, batch: list[tuple[NewJob, asyncio.Future[Enqueued]]]) -> None:
        while batch:
            try:
                results = await self._client.enqueue_many([job for job, _ in batch])
            except InvalidNewJob as exc:
                # Nothing was written: answer the bad job and send the others without it.
                _, future = batch.pop(exc.index)
                _settle(future, InvalidNewJob(0, exc.reason))
                continue
            except EnqueueUnconfirmed as exc:  # each caller hears of its own job only
                for index, (_, future) in enumerate(batch):
                    _settle(future, exc.only(index))
                return
            except Exception as exc:  # e.g. Redis unreachable: every job in it hears so
                for _, future in batch:
                    _settle(future, exc)
                return
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result)
            return


def _settle(future: asyncio.Future[Enqueued], outcome: Enqueued | BaseException) -> None:
    # A request that went away (client disconnected) cancelled its future already.
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
