"""One run of local mode, top to bottom: Redis, producer, autoscaled workers, the view.

::

    start Redis (REDIS_URL, the spec's redis.url, or a private redis-server)
    start the producer API; install Ctrl-C/SIGTERM handlers; start demo bursts if asked
    every poll: sample the queue -> the operator's policy -> the worker pool -> the view
    on Ctrl-C, SIGTERM, --duration-s or --exit-when-idle: stop the demo, SIGTERM the
    producer and every worker (grace period, then SIGKILL), stop the private Redis

A second Ctrl-C while stopping SIGKILLs what is left, so local mode never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobqueue.core.backlog import QueueSample, sample_queue
from jobqueue.core.client import AsyncClient
from jobqueue.core.connection import async_redis
from jobqueue.core.settings import QueueSettings
from jobqueue.local import demo
from jobqueue.local.autoscale import Autoscaler
from jobqueue.local.outcomes import DeadLetter, OutcomeTally, recent_dead_letters
from jobqueue.local.pool import WorkerPool
from jobqueue.local.private_redis import PrivateRedis
from jobqueue.local.processes import Child, describe_exit, jobqueue_command, spawn, stop_all
from jobqueue.local.queue import LocalQueue
from jobqueue.local.settings import DevSettings
from jobqueue.local.view import Snapshot

EVENTS_SHOWN = 10
PRODUCER_STOP_S = 10.0
PRODUCER_RESTART_AFTER_S = 5.0
"""A producer that dies sooner than this after its start is not restarted."""
CHILD_ENV = {"PYTHONUNBUFFERED": "1"}


class DevSession:
    """Everything one ``jobqueue dev`` started, and the loop that drives it."""

    def __init__(
        self,
        queue: LocalQueue,
        settings: DevSettings,
        show: Callable[[Snapshot], None],
        log: Callable[[str], None],
    ) -> None:
        self.queue = queue
        self.settings = settings
        self._show = show
        self._log = log
        self._events: deque[str] = deque(maxlen=EVENTS_SHOWN)
        self._started_s = time.monotonic()
        self._stop = asyncio.Event()
        self._stop_signals = 0
        self._desired = 0
        self._seen_work = False
        self._reason = "waiting for the first sample"
        self._autoscaler = Autoscaler(queue.spec)
        self._tally = OutcomeTally()
        self._command = jobqueue_command()
        self.redis_url = ""
        self.run_dir = Path()
        self._private_redis: PrivateRedis | None = None
        self._producer: Child | None = None
        self.pool: WorkerPool | None = None

    def event(self, message: str) -> None:
        """Record one event for the view (and the log in line mode)."""
        line = f"{time.monotonic() - self._started_s:6.1f}s {message}"
        self._events.append(line)
        self._log(line)

    async def run(self) -> None:
        """Run until stopped; everything started is stopped again before this returns."""
        self._prepare_run_dir()
        try:
            self._start_redis()
            await self._run_started()
        finally:
            if self._private_redis is not None:
                self._private_redis.stop()
                self.event("private Redis stopped")
            if self.settings.data_dir is None:
                shutil.rmtree(self.run_dir, ignore_errors=True)

    def _prepare_run_dir(self) -> None:
        if self.settings.data_dir is None:
            self.run_dir = Path(tempfile.mkdtemp(prefix="jobqueue-dev-"))
        else:
            self.run_dir = self.settings.data_dir
            self.run_dir.mkdir(parents=True, exist_ok=True)

    def _start_redis(self) -> None:
        url = self.settings.redis_url or self.queue.spec.redis.url
        if url is None:
            self._private_redis = PrivateRedis(self.run_dir / "redis")
            self._private_redis.start()
            url = self._private_redis.url
            self.event(f"private Redis on {url} (AOF on, data in {self.run_dir / 'redis'})")
        self.redis_url = url

    async def _run_started(self) -> None:
        for note in self.queue.warnings():
            self.event(f"note: {note}")
        self.pool = WorkerPool(
            self._worker_argv,
            self.run_dir / "logs",
            name_prefix=self.queue.name,
            grace_period_s=self.queue.grace_period_s,
            on_event=self.event,
            with_http=self.settings.worker_metrics,
            env={**CHILD_ENV, **self.queue.worker_env()},
        )
        self._install_signal_handlers()
        redis = async_redis(self.redis_url)
        client = AsyncClient(redis, self._queue_settings())
        demo_task = self._start_demo(client)
        try:
            self._start_producer()
            async with aiohttp.ClientSession() as http:
                await self._poll_until_stopped(redis, http)
        finally:
            if demo_task is not None:
                demo_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await demo_task
            await self._stop_children()
            await redis.aclose()
            self._remove_signal_handlers()

    def _queue_settings(self) -> QueueSettings:
        spec = self.queue.spec
        return QueueSettings(
            redis_url=self.redis_url,
            stream=spec.stream,
            group=spec.group,
            dead_stream=spec.dead_letter_stream,
        )

    def _worker_argv(self, consumer: str, http_port: int) -> list[str]:
        return self.queue.worker_argv(self._command, self.redis_url, consumer, http_port)

    def _start_demo(self, client: AsyncClient) -> asyncio.Task[None] | None:
        if not self.settings.demo:
            return None
        self.event("demo: bursts of email/report/webhook/thumbnail jobs")
        return asyncio.create_task(demo.run_bursts(client, self.event), name="demo bursts")

    def _start_producer(self) -> None:
        port = self.settings.producer_port
        if port == 0:
            return
        spec = self.queue.spec
        argv = [
            *self._command, "producer",
            "--redis-url", self.redis_url,
            "--stream", spec.stream,
            "--dead-stream", spec.dead_letter_stream,
            "--host", self.settings.producer_host,
            "--port", str(port),
        ]  # fmt: skip
        self._producer = spawn("producer", argv, self.run_dir / "logs", env=CHILD_ENV)
        self.event(f"producer API on {self.producer_url} (pid {self._producer.pid})")

    @property
    def producer_url(self) -> str:
        if self.settings.producer_port == 0:
            return "(off)"
        return f"http://{self.settings.producer_host}:{self.settings.producer_port}"

    async def _poll_until_stopped(self, redis: Redis, http: aiohttp.ClientSession) -> None:
        interval_s = self.queue.poll_interval_s
        while not self._stop.is_set():
            snapshot = await self._tick(redis, http)
            self._show(snapshot)
            if self._should_finish(snapshot):
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval_s)

    async def _tick(self, redis: Redis, http: aiohttp.ClientSession) -> Snapshot:
        """One poll: sample, decide, reconcile the workers, and build the view's snapshot."""
        assert self.pool is not None
        now = time.monotonic()
        self._check_producer()
        try:
            sample = await sample_queue(redis, self.queue.keys)
            dead = await recent_dead_letters(redis, self.queue.keys.dead)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # Workers keep running (they retry on their own); scaling waits for Redis.
            self.pool.reconcile(self._desired, now)
            return self._snapshot(now, None, error=str(exc) or type(exc).__name__)
        step = self._autoscaler.step(sample, self._desired, now)
        if step.decision.replicas != self._desired:
            self.event(f"scale {self._desired} -> {step.decision.replicas}: {step.decision.reason}")
        self._desired = step.decision.replicas
        self._reason = step.decision.reason
        self._seen_work = self._seen_work or sample.backlog > 0 or self._desired > 0
        self.pool.reconcile(self._desired, now)
        await self._tally.scrape(http, ((w.name, w.http_port) for w in self.pool.workers))
        return self._snapshot(
            now, sample, dead=dead, arrival=step.arrival_rate, completion=step.completion_rate
        )

    def _snapshot(
        self,
        now: float,
        sample: QueueSample | None,
        *,
        dead: Sequence[DeadLetter] = (),
        arrival: float = 0.0,
        completion: float = 0.0,
        error: str = "",
    ) -> Snapshot:
        assert self.pool is not None
        return Snapshot(
            queue_name=self.queue.name,
            redis_url=self.redis_url,
            producer_url=self.producer_url,
            log_dir=str(self.run_dir / "logs"),
            elapsed_s=now - self._started_s,
            sample=sample,
            arrival_rate=arrival,
            completion_rate=completion,
            replicas_current=len(self.pool.running),
            replicas_stopping=len(self.pool.stopping),
            replicas_desired=self._desired,
            min_replicas=self.queue.min_replicas,
            max_replicas=self.queue.max_replicas,
            reason=self._reason,
            outcomes=self._tally.totals(),
            dead_letters=tuple(dead),
            events=tuple(self._events),
            error=error,
        )

    def _should_finish(self, snap: Snapshot) -> bool:
        duration_s = self.settings.duration_s
        if duration_s is not None and snap.elapsed_s >= duration_s:
            self.event(f"ran for {duration_s:g}s: stopping")
            return True
        if self.settings.exit_when_idle and self._seen_work and self._idle_at_minimum(snap):
            self.event("queue idle at its minimum replicas: stopping")
            return True
        return False

    def _idle_at_minimum(self, snap: Snapshot) -> bool:
        sample = snap.sample
        return (
            sample is not None
            and sample.lag == 0
            and sample.pending == 0
            and sample.delayed == 0
            and snap.replicas_desired == self.queue.min_replicas
            and snap.replicas_current == self.queue.min_replicas
            and snap.replicas_stopping == 0
        )

    def _check_producer(self) -> None:
        producer = self._producer
        if producer is None or producer.alive:
            return
        code = producer.returncode
        assert code is not None
        tail = producer.log_tail().splitlines()[-1:]
        self.event(f"producer exited ({describe_exit(code)}): {tail[0] if tail else ''}")
        if time.monotonic() - producer.started_at_s < PRODUCER_RESTART_AFTER_S:
            # It died at start (port taken, bad flags): restarting would only loop.
            self._producer = None
            self.event("producer not restarted: see its log")
            return
        self._start_producer()

    async def _stop_children(self) -> None:
        assert self.pool is not None
        children = [*self.pool.workers, *([self._producer] if self._producer else [])]
        if not children:
            return
        self.event(
            f"stopping {len(self.pool.workers)} worker(s) and the producer "
            f"(grace period {self.queue.grace_period_s:g}s; Ctrl-C again to kill now)"
        )
        grace_s = max(self.queue.grace_period_s, PRODUCER_STOP_S)
        # Blocking waits run in a thread so a second Ctrl-C is still handled meanwhile.
        await asyncio.to_thread(stop_all, children, grace_s)
        self.event(f"all {len(children)} processes stopped")
        self.pool.workers.clear()
        self._producer = None

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int) -> None:
        self._stop_signals += 1
        if self._stop_signals == 1:
            self.event(f"{signal.Signals(signum).name}: stopping everything")
            self._stop.set()
            return
        self.event(f"{signal.Signals(signum).name} again: killing what is left")
        assert self.pool is not None
        for child in [*self.pool.workers, *([self._producer] if self._producer else [])]:
            child.kill()
