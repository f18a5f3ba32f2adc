"""A Redis fault run: real ``jobqueue worker`` processes, a real Redis made unwell.

    report = FaultRun(Fault("freeze", duration_s=3), tmp_path).run()
    print(report.summary())
    assert report.failures() == []

The run starts its own redis-server (AOF, fsync always) and workers, enqueues jobs at a
steady rate that sleep ``job_ms`` and then write to Redis (``HINCRBY``), so some are
always in flight, and in the middle makes Redis unwell for ``duration_s``:

==============  ====================================================================
``freeze``      ``SIGSTOP`` the server, ``SIGCONT`` after the duration
``pause``       ``CLIENT PAUSE <duration> ALL``
``down``        stop the server, start it again (AOF replayed)
``maxmemory``   ``maxmemory 1`` with ``noeviction``: every write that may grow memory
                is refused
``latency``     ``DEBUG SLEEP 2`` every 3 s (the server answers nobody meanwhile)
``emptied``     the server restarted without its data (what was enqueued before is
                settled first and not counted: an emptied Redis has lost it)
==============  ====================================================================

Then it lets the workers settle and counts: valid jobs dead-lettered, jobs lost
(accepted, never recorded, not dead-lettered), entries still pending or delayed,
duplicates (a job's ``HINCRBY`` landing twice), worker processes that exited, and how
long after the fault's end the workers finished jobs again (the resume time). Enqueues
this process made while Redis could not answer are not "accepted" (their caller got an
error), unless the job shows up done.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import orjson
import redis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import new_job_id, utc_now_iso
from support.records import sync_record
from support.redis_server import RedisServer
from support.worker_process import WorkerProcess

KEYS = QueueKeys()
DONE = "faults:done"
TICK_S = 0.05
LATENCY_SLEEP_S, LATENCY_EVERY_S = 2.0, 3.0
T = TypeVar("T")
CLIENT_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError)


@dataclass(frozen=True)
class Fault:
    """One fault and the run around it; durations in seconds, rates in jobs/s."""

    kind: str
    duration_s: float = 3.0
    rate: float = 100.0
    before_s: float = 2.0
    after_s: float = 2.0
    workers: int = 2
    concurrency: int = 16
    job_ms: int = 100
    """How long each job runs before its write."""
    max_attempts: int = 5
    """Small, with quick retries: an episode would use it up many times over if it
    counted."""
    settle_timeout_s: float = 90.0


@dataclass
class FaultReport:
    fault: Fault
    accepted: int = 0
    succeeded: int = 0
    valid_dead: list[str] = field(default_factory=list)
    lost: int = 0
    pending: int = 0
    delayed: int = 0
    duplicates: int = 0
    worker_exits: list[str] = field(default_factory=list)
    held: int = 0
    """Attempts Redis failed that were not counted (the workers' log lines)."""
    retried: int = 0
    """Jobs that needed more than one counted attempt."""
    resume_s: float | None = None
    """From the fault's end until the workers finished jobs again."""
    elapsed_s: float = 0.0

    def failures(self, resume_within_s: float) -> list[str]:
        problems = []
        if self.valid_dead:
            problems.append(
                f"{len(self.valid_dead)} valid jobs dead-lettered: {self.valid_dead[:3]}"
            )
        if self.lost:
            problems.append(f"{self.lost} jobs lost")
        if self.pending or self.delayed:
            problems.append(f"left at the end: {self.pending} pending, {self.delayed} delayed")
        if self.worker_exits:
            problems.append(f"workers exited: {self.worker_exits}")
        if self.resume_s is None or self.resume_s > resume_within_s:
            problems.append(f"resumed after {self.resume_s} s (limit {resume_within_s} s)")
        return problems

    def summary(self) -> str:
        f = self.fault
        resume = "never" if self.resume_s is None else f"{self.resume_s:.1f} s"
        return (
            f"{f.kind:<10} {f.duration_s:>4.0f} s: accepted {self.accepted}, succeeded"
            f" {self.succeeded}, valid dead {len(self.valid_dead)}, lost {self.lost},"
            f" pending {self.pending}, delayed {self.delayed}, duplicates {self.duplicates},"
            f" held {self.held}, retried {self.retried},"
            f" worker exits {len(self.worker_exits)}, resumed {resume}"
            f" ({self.elapsed_s:.0f} s run)"
        )


class FaultRun:
    """One `Fault` against a redis-server of its own, under ``directory``."""

    def __init__(self, fault: Fault, directory: Path) -> None:
        self.fault = fault
        self.directory = directory
        extra = ("--enable-debug-command", "yes", "--maxmemory-policy", "noeviction")
        self.server = RedisServer(directory / "redis", appendonly=True, extra_args=extra)
        self.workers: list[WorkerProcess] = []
        self.accepted: list[str] = []
        self.unknown: list[str] = []
        self.report = FaultReport(fault)

    def run(self) -> FaultReport:
        started = time.monotonic()
        self.server.start()
        self.client = redis.Redis.from_url(self.server.url, decode_responses=True, socket_timeout=5)
        try:
            self._start_workers()
            self._enqueue_for(self.fault.before_s)
            if self.fault.kind == "emptied":
                self._settle()
                self.accepted.clear()  # what an emptied Redis held is gone with it
            ended = self._inflict()
            self.report.resume_s = self._resume_time(ended)
            self._enqueue_for(self.fault.after_s)
            self._settle()
            self._count()
        finally:
            for worker in self.workers:
                worker.stop(timeout_s=30)
            self.client.close()
            self.server.stop()
        self.report.elapsed_s = time.monotonic() - started
        return self.report

    # -- workers and jobs -------------------------------------------------------------

    def _start_workers(self) -> None:
        f = self.fault
        env = {"JOBQUEUE_BACKOFF_BASE_S": "0.1", "JOBQUEUE_BACKOFF_CAP_S": "0.5"}
        for n in range(f.workers):
            args = ["--concurrency", str(f.concurrency), "--max-attempts", str(f.max_attempts)]
            worker = WorkerProcess(self.server.url, f"faults-{n}", *args, env=env)
            worker.log_path = self.directory / f"worker-{n}.log"
            self.workers.append(worker.start())
        for worker in self.workers:
            worker.wait_ready(60)

    def _enqueue(self, count: int) -> list[str]:
        """XADD ``count`` record jobs; the ids whose XADD Redis confirmed."""
        ids = [new_job_id() for _ in range(count)]
        payload = orjson.dumps({"ms": self.fault.job_ms, "into": DONE}).decode()
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    fields = {"id": job_id, "type": "sleep", "payload": payload}
                    fields |= {"priority": "5", "enqueued_at": utc_now_iso(), "attempts": "0"}
                    pipe.xadd(KEYS.stream, fields)  # type: ignore[arg-type]
                replies = pipe.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError):
            self.unknown += ids  # the reply was lost: it may or may not have landed
            return []
        confirmed = [i for i, r in zip(ids, replies, strict=True) if not isinstance(r, Exception)]
        self.accepted += confirmed
        return confirmed

    def _enqueue_for(self, seconds: float, *, until: float | None = None) -> None:
        """Enqueue at the fault's rate for ``seconds``."""
        begin, sent = time.monotonic(), 0
        while (now := time.monotonic()) < begin + seconds:
            due = int((now - begin) * self.fault.rate)
            if due > sent:
                self._enqueue(due - sent)
                sent = due
            time.sleep(TICK_S)

    # -- the fault ----------------------------------------------------------------------

    def _inflict(self) -> float:
        """Make Redis unwell for the fault's duration; returns when it ended (monotonic)."""
        kind, duration_s = self.fault.kind, self.fault.duration_s
        if kind == "freeze":
            assert self.server.process is not None
            os.kill(self.server.process.pid, signal.SIGSTOP)
            time.sleep(duration_s)
            os.kill(self.server.process.pid, signal.SIGCONT)
        elif kind == "pause":
            self.client.execute_command("CLIENT", "PAUSE", int(duration_s * 1000), "ALL")
            time.sleep(duration_s)
        elif kind == "down":
            self.server.stop()
            time.sleep(duration_s)
            self.server.start()
        elif kind == "maxmemory":
            self.client.config_set("maxmemory", "1")
            self._enqueue_for(duration_s)  # refused: none of these is accepted
            self.client.config_set("maxmemory", "0")
        elif kind == "latency":
            self._latency_spikes(duration_s)
        elif kind == "emptied":
            self.server.stop()
            for name in os.listdir(self.server.directory):
                if name.startswith(("appendonly", "dump")):
                    _remove(self.server.directory / name)
            self.server.start()
        else:
            raise ValueError(f"unknown fault {kind!r}")
        return time.monotonic()

    def _latency_spikes(self, duration_s: float) -> None:
        stop = threading.Event()

        def spikes() -> None:
            spiker = redis.Redis.from_url(self.server.url, socket_timeout=30)
            try:
                while not stop.is_set():
                    spiker.execute_command("DEBUG", "SLEEP", LATENCY_SLEEP_S)
                    stop.wait(LATENCY_EVERY_S - LATENCY_SLEEP_S)
            finally:
                spiker.close()

        thread = threading.Thread(target=spikes, daemon=True)
        thread.start()
        self._enqueue_for(duration_s)
        stop.set()
        thread.join(30)

    def _resume_time(self, ended: float, limit_s: float = 60.0) -> float | None:
        """Seconds from ``ended`` until the workers finish a job again: more jobs done
        than the first count read after ``ended`` (which includes writes that were held
        on the wire and landed as Redis came back). One job is enqueued then, so there
        is work even without a backlog; behind a backlog any job will do."""
        deadline = time.monotonic() + limit_s
        marker: list[str] = []
        first = -1
        while time.monotonic() < deadline:
            if not marker:
                marker = self._enqueue(1)
            done = self._call(lambda: int(self.client.hlen(DONE)), -1)
            if first < 0:
                first = done
            elif done > first:
                return time.monotonic() - ended
            time.sleep(TICK_S / 5)
        return None

    # -- the end ------------------------------------------------------------------------

    def _call(self, call: Callable[[], T], default: T) -> T:
        try:
            return call()
        except CLIENT_ERRORS:
            return default

    def _settle(self) -> None:
        deadline = time.monotonic() + self.fault.settle_timeout_s
        while time.monotonic() < deadline:
            done: dict[str, str] = self._call(lambda: self.client.hgetall(DONE), {})
            dead = self._dead()
            if not set(self.accepted) - done.keys() - dead.keys() and self._quiet():
                return
            time.sleep(0.2)

    def _quiet(self) -> bool:
        pending = self._call(
            lambda: int(self.client.xpending(KEYS.stream, KEYS.group)["pending"]), -1
        )
        delayed = self._call(lambda: int(self.client.zcard(KEYS.delayed)), -1)
        return pending == 0 and delayed == 0

    def _dead(self) -> dict[str, str]:
        rows: list[tuple[str, dict[str, str]]] = self._call(
            lambda: self.client.xrange(KEYS.dead), []
        )
        return {fields.get("original_id", ""): fields.get("reason", "") for _, fields in rows}

    def _count(self) -> None:
        report = self.report
        done = {k: int(v) for k, v in self.client.hgetall(DONE).items()}
        dead = self._dead()
        accepted = set(self.accepted) | (set(self.unknown) & (done.keys() | dead.keys()))
        report.accepted = len(accepted)
        report.succeeded = len(accepted & done.keys())
        report.valid_dead = [dead[i] for i in accepted if i in dead]
        report.lost = len(accepted - done.keys() - dead.keys())
        report.pending = int(self.client.xpending(KEYS.stream, KEYS.group)["pending"])
        report.delayed = int(self.client.zcard(KEYS.delayed))
        report.duplicates = sum(n - 1 for n in done.values() if n > 1)
        report.held = sum(w.output(limit=None).count("not counted") for w in self.workers)
        attempts = [sync_record(self.client, job_id, KEYS).get("attempts") for job_id in accepted]
        report.retried = sum(1 for n in attempts if n is not None and int(n) > 1)
        report.worker_exits = [
            f"{w.consumer}: exit {w.poll()}" for w in self.workers if w.poll() is not None
        ]


def _remove(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            _remove(child)
        path.rmdir()
    else:
        path.unlink()
