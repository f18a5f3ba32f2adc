"""A worker process of a partitioned queue: one `Worker` engine per partition it consumes.

A partition is a whole queue unit (`jobqueue.core.partitions`), so the engine that runs
one queue runs one partition unchanged: its own hot connection to the primary owning the
partition's slot, its own reclaim, promotion of delayed jobs, trimming, dead letters,
crash records and limiter (enforcing the partition's share of the queue's limits,
`jobqueue.core.partitions.partition_limits`), all on that partition's keys. This process
adds what must be once per process:

- the concurrency, divided among the engines (each gets at least 1; the producer
  spreads jobs evenly, so even shares keep every engine busy without any engine holding
  more pending entries than it can run, which a shared pool could not promise);
- the metrics: one set of metric objects (label ``queue``: the queue's stream) that
  every engine updates, the in-flight gauge their sum;
- the turn of suspects (`jobqueue.worker.solo`): one runs at a time in the process,
  since a death takes every engine's running jobs with it;
- signals, the stop, the exit code (the first engine to fail stops the others and its
  code is the process's), and the HTTP side server (``/readyz`` 503 while any engine's
  Redis refuses access, ``/healthz`` with the oldest of the engines' last reads).

Which partitions: all of them (``JOBQUEUE_PARTITIONS``), or the subset in
``JOBQUEUE_WORKER_PARTITIONS`` (``0,2``, ``4-7``) when there are too many for one
process: every partition must then be named by some worker, which nothing checks (the
operator runs every worker on all partitions).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time

from prometheus_client import CollectorRegistry

from jobqueue.core.keys import QueueKeys
from jobqueue.core.partitions import partition_limits
from jobqueue.worker.app import App
from jobqueue.worker.http import SideServer
from jobqueue.worker.metrics import WorkerMetrics
from jobqueue.worker.runner import EXIT_BEYOND_REPAIR, EXIT_CONFIG, EXIT_OK, EarlyStop, Worker
from jobqueue.worker.settings import WorkerSettings

log = logging.getLogger("jobqueue.worker")


def worker_for(
    app: App, settings: WorkerSettings, *, registry: CollectorRegistry | None = None
) -> Worker | PartitionedWorker:
    """The worker of ``settings``: the plain engine for a queue of one partition (its
    hot path untouched), else one engine per partition consumed."""
    if settings.queue.partitions == 1:
        return Worker(app, settings, registry=registry)
    return PartitionedWorker(app, settings, registry=registry)


def engine_settings(settings: WorkerSettings) -> list[WorkerSettings]:
    """The settings of each engine: the partition's stream as the queue (one partition),
    a share of the concurrency, no side server of its own."""
    queue = settings.queue
    every = queue.partition_keys
    chosen = settings.partitions or tuple(range(len(every)))
    share, extra = divmod(settings.concurrency, len(chosen))
    engines = []
    for rank, partition in enumerate(chosen):
        keys: QueueKeys = every[partition]
        engines.append(
            dataclasses.replace(
                settings,
                queue=dataclasses.replace(queue, stream=keys.stream, partitions=1),
                concurrency=max(1, share + (1 if rank < extra else 0)),
                limits=partition_limits(settings.limits, len(every), partition),
                http_port=0,
                partitions=(),
            )
        )
    return engines


class PartitionedWorker:
    """The engines of the partitions this process consumes, run as one worker."""

    def __init__(
        self, app: App, settings: WorkerSettings, *, registry: CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.metrics = WorkerMetrics(registry, settings.queue.stream)
        # One suspect at a time in the process: a death blames every engine's suspect.
        turn = asyncio.Lock()
        self.engines = [
            Worker(app, s, metrics=self.metrics, solo_turn=turn) for s in engine_settings(settings)
        ]
        self.partitions = settings.partitions or tuple(range(settings.queue.partitions))
        engines = self.engines
        self.metrics.in_flight.set_function(lambda: sum(e.inflight.count for e in engines))
        self.http = SideServer(engines[0].redis, self.metrics, _Reads(engines), _Denials(engines))

    def stop(self) -> None:
        """Ask every engine to stop reading and finish gracefully."""
        for engine in self.engines:
            engine.stop()

    async def run(self, *, handle_signals: bool = True, early: EarlyStop | None = None) -> int:
        """Run every engine until stopped (signal, `stop`, every partition drained in
        burst mode, or one engine failing); the exit code."""
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        s = self.settings
        log.info(
            "worker %s: %d partitions of %s (%s), concurrency %s",
            s.consumer,
            len(self.engines),
            s.queue.stream,
            ",".join(map(str, self.partitions)),
            "/".join(str(e.settings.concurrency) for e in self.engines),
        )
        if s.http_port:
            try:
                await self.http.start(s.http_host, s.http_port)
            except OSError as exc:
                log.error("cannot serve HTTP on %s:%d: %s", s.http_host, s.http_port, exc)
                self.stop()
                return await self._finish(EXIT_CONFIG, [])
        runs = [
            asyncio.create_task(e.run(handle_signals=False, early=early), name=f"partition-{p}")
            for p, e in zip(self.partitions, self.engines, strict=True)
        ]
        code = EXIT_OK
        pending = set(runs)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    log.error("%s failed", task.get_name(), exc_info=task.exception())
                    ended = EXIT_BEYOND_REPAIR
                else:
                    ended = task.result()
                if ended != EXIT_OK and code == EXIT_OK:
                    code = ended
                    log.error("%s ended with exit %d: stopping the others", task.get_name(), ended)
                    self.stop()
        return await self._finish(code, runs)

    async def _finish(self, code: int, runs: list[asyncio.Task[int]]) -> int:
        await asyncio.gather(*runs, return_exceptions=True)  # each one's failure logged above
        await self.http.stop()
        return code


class _Reads:
    """The side server's view of the engines' read loops: the oldest last read."""

    def __init__(self, engines: list[Worker]) -> None:
        self._engines = engines

    @property
    def last_read_at(self) -> float:
        return min((e.read_loop.last_read_at for e in self._engines), default=time.monotonic())

    @property
    def restarts(self) -> int:
        return sum(e.read_loop.restarts for e in self._engines)


class _Denials:
    """Redis refusing any engine's access makes the process unready."""

    def __init__(self, engines: list[Worker]) -> None:
        self._engines = engines

    @property
    def denied_since(self) -> bool:
        return any(e.health.denied_since for e in self._engines)

    @property
    def denied_reason(self) -> str:
        return next((e.health.denied_reason for e in self._engines if e.health.denied_since), "")
