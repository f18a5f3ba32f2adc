"""The worker's lifecycle: start the loops, wait for a stop, stop gracefully.

`Worker.run` reads top to bottom: signals set the stop event; the read loop and the
periodic loops (reclaim, delayed promotion, heartbeat, trim) and the HTTP side server
start as tasks; then it waits for the stop event; then it lets in-flight jobs finish
within the grace period and stops everything. Jobs that did not finish stay pending in
Redis, to be drained on restart or reclaimed by another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import InvalidResponse, ResponseError

from jobqueue.core import redis_errors
from jobqueue.core.connection import async_redis
from jobqueue.worker.app import App
from jobqueue.worker.dispatch import Dispatcher
from jobqueue.worker.execution import Executor, cancel_overdue
from jobqueue.worker.health import RedisHealth
from jobqueue.worker.heartbeat import Heartbeat
from jobqueue.worker.hot_connection import HotConnection
from jobqueue.worker.http import SideServer
from jobqueue.worker.inflight import InFlight
from jobqueue.worker.lanes import lane_streams
from jobqueue.worker.limiter import Limiter
from jobqueue.worker.metrics import WorkerMetrics
from jobqueue.worker.outcomes import Outcomes
from jobqueue.worker.promote import Promoter
from jobqueue.worker.read_loop import LoopBeyondRepair, ReadLoop
from jobqueue.worker.reader import Reader
from jobqueue.worker.reclaim import Reclaimer
from jobqueue.worker.resilience import ACCESS_DENIED_ERRORS, TRANSIENT_ERRORS, vanished
from jobqueue.worker.settings import WorkerSettings
from jobqueue.worker.solo import UNAVAILABLE, SoloGate
from jobqueue.worker.trim import Trimmer

log = logging.getLogger("jobqueue.worker")
REAP_ROUNDS, REAP_WAIT_S = 10, 1.0

EXIT_OK, EXIT_BEYOND_REPAIR, EXIT_CONFIG, EXIT_ACCESS_DENIED = 0, 1, 2, 3
FINAL_FLUSH_TIMEOUT_S = 5.0
"""Longest wait at shutdown for the last acknowledgements, seconds."""
HOUSEKEEPING_EVERY = 10
"""Reclaim sweeps between two prunings of departed consumers and stale crash counts."""
TIMEOUT_TICK_S = 0.1
"""How often handlers past their timeout are looked for: a job's timeout is honoured
within this many seconds."""


class EarlyStop:
    """Stop signals caught from the first moment of the CLI until the event loop takes
    over: a pod told to stop while it imports its app exits 0, cleanly, instead of dying
    by the signal. `install` it first; `Worker.run` reads it once its own handlers are in
    place."""

    def __init__(self) -> None:
        self.requested = 0
        """The signal number received, 0 if none."""

    def install(self) -> EarlyStop:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._caught)
        return self

    def _caught(self, signum: int, frame: object) -> None:
        self.requested = signum


class Worker:
    """One consumer of one queue, running the handlers of ``app``."""

    def __init__(
        self,
        app: App,
        settings: WorkerSettings,
        *,
        redis: AsyncRedis | None = None,
        registry: CollectorRegistry | None = None,
        metrics: WorkerMetrics | None = None,
        solo_turn: asyncio.Lock | None = None,
    ) -> None:
        """``metrics``: the metric objects to update (several engines of one process
        share them, `jobqueue.worker.partitioned`); else a set of its own in
        ``registry``. ``solo_turn``: the process's one turn for running suspects, shared
        by its engines (`jobqueue.worker.solo`); else one of its own."""
        self.app = app
        self.settings = settings
        keys = settings.queue.keys
        # The socket timeout must outlast the longest blocking read.
        self.redis = redis or async_redis(
            settings.queue.redis_url, socket_timeout_s=settings.block_ms / 1000 + 10
        )
        self.metrics = metrics or WorkerMetrics(registry, settings.queue.stream)
        self.stopping = asyncio.Event()
        """Set to stop reading (signal, `stop`, burst done); in-flight jobs may finish."""
        self.closing = asyncio.Event()
        """Set once in-flight work is over: the periodic loops end."""
        self.inflight = InFlight(settings.concurrency)
        # Read at scrape time: no per-job cost on the hot path.
        self.metrics.in_flight.set_function(lambda: self.inflight.count)
        consumer = settings.consumer
        lanes = settings.queue.lanes
        self.lanes = lane_streams(self.redis, keys, lanes, consumer)
        """The streams this worker reads, highest lane first (one without lanes)."""
        if lanes:
            self.metrics.count_lanes([lane.name for lane in self.lanes])
        self.outcomes = Outcomes(
            self.redis,
            keys,
            settings.queue.status_ttl_s,
            self.metrics,
            self.inflight.release,
            self.lanes,
        )
        self.health = RedisHealth(self.redis, keys, settings.consumer)
        self.ledger = next(lane.ledger for lane in self.lanes if lane.stream == keys.stream)
        """The crash ledger of the queue's own stream."""
        self.solo = SoloGate(self.ledger, solo_turn)
        self.executor = Executor(app, settings, self.redis, self.outcomes, self.health, self.solo)
        self.limiter = (
            Limiter(self.redis, keys, settings.limits, settings.lease_ttl_s, self.metrics.registry)
            if settings.limits
            else None
        )
        self.dispatcher = Dispatcher(
            settings, self.inflight, self.executor, self.outcomes, self.limiter
        )
        dispatch = self.dispatcher.dispatch
        self.hot = HotConnection(
            settings.queue.redis_url, name=f"jobqueue-worker:{consumer}", key=keys.stream
        )
        reader = Reader(
            self.redis,
            self.hot,
            keys,
            consumer,
            self.inflight,
            settings.block_ms,
            dispatch,
            self.outcomes,
            self.lanes,
            settings.weights,
        )
        self.read_loop = ReadLoop(
            self.redis, settings, reader, self.inflight, self.stopping, self.health
        )
        self.reclaimer = Reclaimer(
            self.redis,
            keys,
            consumer,
            self.inflight,
            self.metrics,
            settings.visibility_timeout_s,
            dispatch,
            self.lanes,
        )
        self.promoter = Promoter(self.redis, keys, settings.queue.status_ttl_s, lanes)
        self.heartbeat = Heartbeat(self.redis, keys, consumer, self.inflight)
        self.trimmer = Trimmer(self.redis, keys, [lane.stream for lane in self.lanes])
        self.http = SideServer(self.redis, self.metrics, self.read_loop, self.health)
        self.access_denied = False
        """Set when Redis refused access for too long: the exit code says so."""
        self._sweeps = 0

    async def run(self, *, handle_signals: bool = True, early: EarlyStop | None = None) -> int:
        """Run until stopped (signal, `stop`, or burst done); returns the exit code.

        ``early`` caught stop signals before the event loop existed (while the app was
        imported): the worker then stops before its first read.
        """
        if handle_signals:
            self._install_signal_handlers()
        if early is not None and early.requested:
            log.info("stop requested during start-up (signal %d): not reading", early.requested)
            self.stop()
        s = self.settings
        if not await self._speaks_redis():
            await self._close()
            return EXIT_CONFIG
        log.info(
            "worker %s: stream %s group %s, handlers: %s",
            s.consumer,
            s.queue.stream,
            s.queue.group,
            ", ".join(sorted(self.app.handlers)) or "none",
        )
        if s.queue.lanes:
            log.info(
                "priority lanes (%s): %s",
                s.lane_mode,
                ", ".join(f"{lane.name} -> {lane.stream}" for lane in self.lanes),
            )
        if s.http_port:
            try:
                await self.http.start(s.http_host, s.http_port)
            except OSError as exc:
                log.error("cannot serve HTTP on %s:%d: %s", s.http_host, s.http_port, exc)
                await self._close()
                return EXIT_CONFIG
        acks = asyncio.create_task(self.outcomes.run_acks(), name="acks")
        watch = self.health.watch(self.closing, s.access_denied_exit_s, self._access_denied)
        watching = asyncio.create_task(watch, name="health")
        reading = asyncio.create_task(self.read_loop.run(), name="read-loop")
        periodic = [
            self._every(s.reclaim_interval_s, self._reclaim, "reclaim"),
            self._every(s.promote_interval_s, self._promote, "promote"),
            self._every(s.heartbeat_interval_s, self.heartbeat.beat, "heartbeat"),
            self._every(s.trim_interval_s, self.trimmer.trim, "trim"),
            self._every(TIMEOUT_TICK_S, self._cancel_overdue, "timeouts"),
        ]
        if self.limiter is not None:
            periodic.append(self._every(s.heartbeat_interval_s, self.limiter.refresh, "leases"))
        await self.stopping.wait()
        code = await self._finish_reading(reading)
        if self.access_denied:
            code = EXIT_ACCESS_DENIED
        await self._drain_in_flight(s.grace_period_s)
        await self.outcomes.flush_left(FINAL_FLUSH_TIMEOUT_S)
        await self._forget_starts()
        self.closing.set()
        self.outcomes.stop()
        await reap([*periodic, acks, watching])
        await self._close()
        log.info("worker %s stopped (exit %d)", s.consumer, code)
        return code

    async def _speaks_redis(self) -> bool:
        """False (logged in one line) when the URL leads to a server that is not Redis;
        Redis being down is not this: the loops ride that out."""
        try:
            await self.redis.ping()
        except TRANSIENT_ERRORS:
            return True
        except (InvalidResponse, ResponseError) as exc:
            if isinstance(exc, ACCESS_DENIED_ERRORS) or str(exc).startswith(
                ("NOAUTH", "WRONGPASS")
            ):
                return True  # Redis, refusing us: the health watch reports it and gives up
            host = urllib.parse.urlsplit(self.settings.queue.redis_url).hostname
            log.error("the server at %s does not answer as Redis does: %r", host, exc)
            return False
        return True

    def _access_denied(self) -> None:
        self.access_denied = True
        self.stop()

    def stop(self) -> None:
        """Ask the worker to stop reading and finish gracefully."""
        self.stopping.set()

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)

    async def _finish_reading(self, reading: asyncio.Task[None]) -> int:
        try:
            await reading
        except LoopBeyondRepair as exc:
            log.error("read loop beyond repair, exiting: %s", exc)
            return EXIT_BEYOND_REPAIR
        return EXIT_OK

    async def _drain_in_flight(self, grace_period_s: float) -> None:
        """Wait up to the grace period for in-flight jobs; abandon the rest (pending)."""
        try:
            await asyncio.wait_for(self.inflight.wait_until_empty(), grace_period_s)
        except TimeoutError:
            left = list(self.inflight.deliveries.values())
            log.warning("grace period over: %d jobs left pending for reclaim", len(left))
            await reap([d.task for d in left if d.task is not None])

    async def _promote(self) -> None:
        if self.health.ok:  # a Redis refusing writes gets no new work to hold
            await self.promoter.promote_due()

    async def _forget_starts(self) -> None:
        """A graceful stop: what this worker leaves pending was not killed by a crash,
        so no job of it is blamed when another worker takes it over (`crashes`)."""
        try:
            async with asyncio.timeout(FINAL_FLUSH_TIMEOUT_S):
                for lane in self.lanes:
                    await lane.ledger.forget()
        except UNAVAILABLE as exc:
            log.warning("could not clear this worker's start records: %s", exc)

    async def _reclaim(self) -> None:
        if not (self.read_loop.drained.is_set() and self.health.ok):
            return
        await self.reclaimer.sweep()
        self._sweeps += 1
        if self._sweeps % HOUSEKEEPING_EVERY == 0:
            idle_ms = int(max(10 * self.settings.visibility_timeout_s, 300) * 1000)
            await self.reclaimer.prune_consumers(idle_ms)
            for lane in self.lanes:
                await lane.ledger.prune()

    async def _cancel_overdue(self) -> None:
        if cancel_overdue(self.inflight, time.monotonic()):
            log.info("cancelled handlers past their timeout")

    def _every(
        self, interval_s: float, step: Callable[[], Awaitable[object]], name: str
    ) -> asyncio.Task[None]:
        async def loop() -> None:
            outages = 0
            while not self.closing.is_set():
                try:
                    await step()
                    outages = 0
                    if self.health.denied_since:
                        self.health.clear_denied(name)
                except ACCESS_DENIED_ERRORS as exc:
                    self.health.note_denied(name, exc)  # one line; the health watch acts
                except TRANSIENT_ERRORS as exc:
                    redis_errors.record("worker", exc)
                    outages += 1
                    if outages == 1 or outages % 100 == 0:
                        log.warning("%s: Redis unavailable (%s)", name, exc)
                except Exception as exc:
                    if vanished(exc):
                        # The read loop recreates the group and says so; until then
                        # there is nothing to reclaim or heartbeat.
                        log.debug("%s: stream or group gone (%s)", name, exc)
                    else:
                        # A periodic step failing must not take the worker down; the
                        # next tick tries again, and the log says why.
                        log.exception("%s failed", name)
                await asyncio.sleep(interval_s)

        return asyncio.create_task(loop(), name=name)

    async def _close(self) -> None:
        self.executor.close()
        await self.http.stop()
        with contextlib.suppress(*TRANSIENT_ERRORS):
            await self.hot.aclose()
            await self.redis.aclose()


async def reap(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them to end, cancelling again if one swallowed it.

    On Python 3.11 ``asyncio.wait_for`` (used inside redis-py) can swallow a cancellation
    that races with its result; a single cancel plus an unbounded wait could then hang
    the shutdown. Every loop also checks a flag, so a repeated cancel always ends it.
    """
    for _ in range(REAP_ROUNDS):
        pending = [task for task in tasks if not task.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=REAP_WAIT_S)
    left = [task.get_name() for task in tasks if not task.done()]
    log.error("tasks did not stop when cancelled: %s", ", ".join(left))
