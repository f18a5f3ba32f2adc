"""One run of local mode, top to bottom: Redis, producer, autoscaled workers, the view.

::

    start Redis (--redis-url/REDIS_URL, the spec's redis.url, or a private redis-server)
    start the producer API; install Ctrl-C/SIGTERM handlers; start demo bursts if asked
    every poll: enqueue due cron ticks, sample the queue -> the operator's policy ->
    the worker pool -> the view
    on Ctrl-C, SIGTERM, --duration-s or --exit-when-idle: stop the demo, SIGTERM the
    producer and every worker (grace period, then SIGKILL), stop the private Redis

A second Ctrl-C while stopping SIGKILLs what is left, so local mode never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobqueue.core.backlog import QueueSample, parse_entry_id
from jobqueue.core.client import AsyncClient
from jobqueue.core.connection import async_redis
from jobqueue.core.dev_state import DevState, remove_state, state_path, write_state
from jobqueue.core.logs import LogSettings
from jobqueue.core.partitions import sample_partitions
from jobqueue.core.settings import QueueSettings
from jobqueue.local import demo
from jobqueue.local.autoscale import Autoscaler
from jobqueue.local.consumers import local_consumer_pattern, reap_local_consumers
from jobqueue.local.events import EventLog
from jobqueue.local.job_types import DEMO_APP, producer_job_types_env
from jobqueue.local.outcomes import DeadLetter, OutcomeTally, recent_dead_letters
from jobqueue.local.pool import KILL_MARGIN_S, WorkerPool
from jobqueue.local.processes import Child, cli_hint, jobqueue_command, stop_all
from jobqueue.local.producer_process import ProducerProcess
from jobqueue.local.queue import LocalQueue
from jobqueue.local.redis_source import RedisSource
from jobqueue.local.schedules import LocalSchedules
from jobqueue.local.settings import DevSettings
from jobqueue.local.view import Snapshot
from jobqueue.operator.limit_usage import sample_partitions_usage

REAP_INTERVAL_S = 10.0
"""Seconds between two passes removing the consumers of workers that are gone."""
PRODUCER_STOP_S = 10.0
"""Seconds the producer gets to finish its requests when local mode stops."""
CHILD_ENV = {"PYTHONUNBUFFERED": "1"}
RECENT_DEAD_LETTERS = 5
"""Dead letters the view lists (the newest, of every partition)."""


def log_env(logs: LogSettings) -> dict[str, str]:
    """The children log as local mode was told to (their lines go to their log files)."""
    return {"JOBQUEUE_LOG_LEVEL": logs.level, "JOBQUEUE_LOG_FORMAT": logs.format}


async def run_dev(
    queue: LocalQueue,
    settings: DevSettings,
    show: Callable[[Snapshot], None],
    log: Callable[[str], None],
) -> None:
    """Run ``queue`` locally until stopped; nothing it started is left running after."""
    events = EventLog(log)
    run_dir = settings.data_dir or Path(tempfile.mkdtemp(prefix="jobqueue-dev-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    source: RedisSource | None = None
    try:
        given_url = settings.redis_url or queue.spec.redis.url
        source = RedisSource.open(given_url, run_dir / "redis", events)
        producer_env = producer_job_types_env(queue.spec.worker.app, run_dir, events)
        await DevSession(queue, settings, source, run_dir, events, show, producer_env).run()
    finally:
        if source is not None:
            source.close()
        if settings.data_dir is None:
            shutil.rmtree(run_dir, ignore_errors=True)


class DevSession:
    """The producer and the worker pool of one run, and the poll loop that drives them."""

    def __init__(
        self,
        queue: LocalQueue,
        settings: DevSettings,
        redis: RedisSource,
        run_dir: Path,
        events: EventLog,
        show: Callable[[Snapshot], None],
        producer_env: Mapping[str, str],
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.redis = redis
        self.log_dir = run_dir / "logs"
        self.event = events
        self._show = show
        self._stop = asyncio.Event()
        self._stop_signals = 0
        self._desired = 0
        self._seen_work = False
        self._reason = "waiting for the first sample"
        self._sample: QueueSample | None = None
        self._error = ""
        self._rates = (0.0, 0.0)
        self._dead: tuple[DeadLetter, ...] = ()
        self._partition_lags: tuple[int, ...] = ()
        self._reaped_s = 0.0
        self._cli_hint = ""
        self._consumer_pattern = local_consumer_pattern(queue.name)
        self._autoscaler = Autoscaler(queue.spec)
        self._schedules = LocalSchedules(queue.spec.schedules, events)
        self._tally = OutcomeTally()
        command = jobqueue_command()
        # The URL goes by environment, never argv: `ps` must not show a password.
        child_env = {**CHILD_ENV, "REDIS_URL": redis.url, **log_env(settings.logs)}
        self.pool = WorkerPool(
            lambda name, port: queue.worker_argv(command, name, port),
            self.log_dir,
            name_prefix=queue.name,
            grace_period_s=queue.grace_period_s,
            on_event=events,
            with_http=settings.worker_metrics,
            env={**child_env, **queue.worker_env()},
        )
        self.producer = ProducerProcess(
            command,
            queue,
            host=settings.producer_host,
            port=settings.producer_port,
            log_dir=self.log_dir,
            on_event=events,
            env={**child_env, **producer_env, **queue.queue_env()},
        )

    async def run(self) -> None:
        """Poll until a stop condition; then stop the demo and every child process."""
        for note in self.queue.warnings():
            self.event(f"note: {note}")
        for line in self._schedules.describe():
            self.event(line)
        self._install_signal_handlers()
        redis = async_redis(self.redis.url)
        self._client = AsyncClient(redis, self._queue_settings())
        demo_task = self._start_demo(self._client)
        state_file = state_path()
        try:
            self.producer.start()
            self._announce(state_file)
            async with aiohttp.ClientSession() as http:
                await self._poll_until_stopped(redis, http)
        finally:
            remove_state(state_file, os.getpid())
            if demo_task is not None:
                demo_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await demo_task
            await self._stop_children()
            await self._reap_consumers(redis)
            await redis.aclose()
            self._remove_signal_handlers()

    def _announce(self, state_file: Path) -> None:
        """Record this queue where the client commands look first, and say how to use
        them from another terminal."""
        keys = self.queue.keys
        state = DevState(
            pid=os.getpid(),
            redis_url=self.redis.url,
            stream=keys.stream,
            group=keys.group,
            dead_stream=self.queue.dead_stream_flag,
            producer_url=self.producer.url,
            partitions=self.queue.spec.partitions,
            lanes=self.queue.spec.lanes_text,
        )
        try:
            write_state(state_file, state)
        except OSError as exc:
            self.event(f"note: cannot write {state_file} ({exc}); give the CLI --redis-url")
            return
        self._cli_hint = cli_hint()
        self.event(f"from another terminal: {self._cli_hint} stats (or dead list, jobs get ID)")

    def _queue_settings(self) -> QueueSettings:
        return self.queue.settings(self.redis.url)

    def _start_demo(self, client: AsyncClient) -> asyncio.Task[None] | None:
        if not self.settings.demo:
            return None
        self.event("demo: bursts of email/report/webhook/thumbnail jobs")
        if self.queue.spec.worker.app != DEMO_APP:
            self.event(
                f"note: demo jobs need {DEMO_APP}; {self.queue.spec.worker.app} may not handle them"
            )
        return asyncio.create_task(demo.run_bursts(client, self.event), name="demo bursts")

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
        now = self.event.elapsed_s()
        self.producer.check()
        self.redis.keep_up()
        try:
            await self._schedules.fire(self._client)
            samples = await sample_partitions(
                redis, self.queue.partition_keys, lanes=self.queue.lanes
            )
            sample = self._client.summed(samples)
            self._partition_lags = tuple(s.lag for s in samples) if len(samples) > 1 else ()
            limits = self.queue.spec.type_limits
            usage = await sample_partitions_usage(redis, self.queue.partition_keys, limits, samples)
            self._dead = await self._recent_dead(redis)
        except (RedisConnectionError, RedisTimeoutError, ResponseError, OSError) as exc:
            # Shown in the view each poll until it clears: workers keep running (they
            # retry on their own) and scaling waits. A ResponseError here is a queue key
            # of the wrong type, something the user must fix, not a reason to stop all.
            self.pool.reconcile(self._desired)
            self._sample, self._error = None, str(exc) or type(exc).__name__
            return self._snapshot()
        only_limited = usage is not None and usage.only_limited_waiting
        step = self._autoscaler.step(sample, self._desired, now, only_limited=only_limited)
        if step.decision.replicas != self._desired:
            self.event(f"scale {self._desired} -> {step.decision.replicas}: {step.decision.reason}")
        self._desired = step.decision.replicas
        self._reason = step.decision.reason
        self._sample, self._error = sample, ""
        self._rates = (step.arrival_rate, step.completion_rate)
        self._seen_work = self._seen_work or sample.backlog > 0 or self._desired > 0
        self.pool.reconcile(self._desired)
        await self._tally.scrape(http, ((w.name, w.http_port) for w in self.pool.workers))
        if now - self._reaped_s >= REAP_INTERVAL_S:
            self._reaped_s = now
            await self._reap_consumers(redis)
        return self._snapshot()

    async def _recent_dead(self, redis: Redis) -> tuple[DeadLetter, ...]:
        """The newest dead letters of every partition, newest first."""
        streams = dict.fromkeys(keys.dead for keys in self.queue.partition_keys)
        found = [d for dead in streams for d in await recent_dead_letters(redis, dead)]
        found.sort(key=lambda d: parse_entry_id(d.entry_id), reverse=True)
        return tuple(found[:RECENT_DEAD_LETTERS])

    async def _reap_consumers(self, redis: Redis) -> None:
        """Remove consumers of this queue's local workers that are gone and hold nothing."""
        running = [w.name for w in self.pool.workers]
        try:
            deleted: set[str] = set()
            for keys in self.queue.partition_keys:
                result = await reap_local_consumers(
                    redis, keys, self._consumer_pattern, running, self.queue.lanes
                )
                deleted.update(result.deleted)
        except (RedisConnectionError, RedisTimeoutError, ResponseError, OSError) as exc:
            self.event(f"consumers of stopped workers not removed: {exc}")
            return
        if deleted:
            self.event(f"removed {len(deleted)} consumer(s) of stopped workers")

    def _snapshot(self) -> Snapshot:
        """The view of the last poll, with the processes and events as they are now."""
        return Snapshot(
            queue_name=self.queue.name,
            redis_url=self.redis.url,
            producer_url=self.producer.url,
            log_dir=str(self.log_dir),
            elapsed_s=self.event.elapsed_s(),
            sample=self._sample,
            oldest_waiting_s=self._sample.oldest_waiting_age_s(time.time()) if self._sample else 0,
            arrival_rate=self._rates[0],
            completion_rate=self._rates[1],
            replicas_current=len(self.pool.running),
            replicas_stopping=len(self.pool.stopping),
            replicas_desired=self._desired,
            min_replicas=self.queue.min_replicas,
            max_replicas=self.queue.max_replicas,
            reason=self._reason,
            outcomes=self._tally.totals(),
            dead_letters=self._dead,
            events=self.event.recent,
            error=self._error,
            cli_hint=self._cli_hint,
            partition_lags=self._partition_lags,
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

    def _children(self) -> Iterator[Child]:
        yield from self.pool.workers
        if self.producer.child is not None:
            yield self.producer.child

    async def _stop_children(self) -> None:
        children = list(self._children())
        if not children:
            return
        self.event(
            f"stopping {len(children)} process(es) (grace period "
            f"{self.queue.grace_period_s:g}s; Ctrl-C again to kill them now)"
        )
        for child in children:
            child.terminate(self.event.elapsed_s())
        self._show(self._snapshot())
        grace_s = max(self.queue.grace_period_s + KILL_MARGIN_S, PRODUCER_STOP_S)
        # Blocking waits run in a thread so a second Ctrl-C is still handled meanwhile.
        await asyncio.to_thread(stop_all, children, grace_s)
        self.pool.workers.clear()
        self.producer.child = None
        self.event(f"all {len(children)} process(es) stopped")
        self._show(self._snapshot())

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
        name = signal.Signals(signum).name
        if self._stop_signals == 1:
            self.event(f"{name}: stopping everything")
            self._stop.set()
            return
        self.event(f"{name} again: killing what is left")
        for child in self._children():
            child.kill()
