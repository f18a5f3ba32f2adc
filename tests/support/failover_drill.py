"""A Sentinel failover under load, with real processes, and what it cost.

`run_drill` starts a `SentinelSetup` (primary, replica, three sentinels), one
``jobqueue producer`` and one ``jobqueue worker`` (both given the ``redis+sentinel://``
URL), posts ``record`` jobs over HTTP from several concurrent callers, SIGKILLs the
primary mid-stream, restarts it once the sentinels promoted the replica (as the
kubelet would restart its pod; it rejoins as a replica), keeps posting, then lets the
worker drain and counts from the new master:

- ``lost``: jobs answered 202 that never ran (not done, not queued, not pending);
- ``duplicates``: jobs that ran more than once;
- ``producer_resume_s``: from the kill to the first 202 of a request sent after it;
- ``worker_resume_s``: from the kill to the first finish of a job accepted after it;
- ``failover_s``: from the kill until every sentinel names the new master.

The tests (tests/sentinel) assert on these; bench/sentinel_failover.py prints them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import redis
from aiohttp import ClientError, ClientSession, ClientTimeout
from producer.http_api import ProducerProcess

from jobqueue.core.keys import QueueKeys
from support.records import sync_record
from support.sentinel_setup import SentinelSetup
from support.worker_process import WorkerProcess

DONE = "failover:done"
KEYS = QueueKeys()
JOB = {"type": "record", "payload": {"into": DONE}}
TYPES_FILE = "record: null\n"


@dataclass
class DrillResult:
    """What one failover cost; every id list holds job ids."""

    min_replicas: int
    accepted: list[str] = field(default_factory=list)
    accepted_after_kill: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    """503 "Enqueue unconfirmed": outcome unknown, not counted as accepted."""
    unavailable: int = 0
    """503 "Redis unavailable" answers (nothing accepted)."""
    lost: list[str] = field(default_factory=list)
    duplicates: int = 0
    runs_of_unconfirmed: int = 0
    """Unconfirmed jobs that ran anyway (they were written before the loss)."""
    failover_s: float = 0.0
    producer_resume_s: float = 0.0
    worker_resume_s: float = 0.0
    accept_rate_per_s: float = 0.0
    """Jobs accepted per second before the kill (the cost of waiting for replicas)."""
    worker_restarted: bool = False
    producer_restarted: bool = False

    def summary(self) -> str:
        return (
            f"min_replicas={self.min_replicas} accepted={len(self.accepted)} "
            f"lost={len(self.lost)} duplicates={self.duplicates} "
            f"unconfirmed={len(self.unconfirmed)} (ran anyway {self.runs_of_unconfirmed}) "
            f"unavailable={self.unavailable} rate={self.accept_rate_per_s:.0f}/s "
            f"failover={self.failover_s:.2f}s "
            f"producer_resume={self.producer_resume_s:.2f}s "
            f"worker_resume={self.worker_resume_s:.2f}s"
        )


class UnexpectedAnswer(AssertionError):
    """The producer answered what the drill does not expect (a 500)."""


ERROR_MARKS = ("unexpected error during", "Redis answered an error", "met a Redis error")
"""Producer log lines of an answer the drill does not expect (see producer errors.py)."""


def errors_in_log(text: str, lines_each: int = 40, most: int = 3) -> str:
    """The first ``most`` producer log records matching `ERROR_MARKS`, each with the
    traceback lines after it: what made the producer answer 500."""
    lines = text.splitlines()
    found: list[str] = []
    for i, line in enumerate(lines):
        if any(mark in line for mark in ERROR_MARKS):
            found.append("\n".join(lines[i : i + lines_each]))
            if len(found) == most:
                break
    return "\n...\n".join(found) or "(no error record in the producer's log)"


@dataclass
class _Load:
    """The posting side's running record."""

    result: DrillResult
    kill_at: float | None = None
    """time.monotonic() of the kill."""
    first_accept_after_kill: float | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def _post_forever(session: ClientSession, url: str, load: _Load) -> None:
    result = load.result
    while not load.stop.is_set():
        sent_at = time.monotonic()
        try:
            async with session.post(f"{url}/jobs", json=JOB) as response:
                body = await response.json()
                status = response.status
        except (ClientError, TimeoutError):
            await asyncio.sleep(0.05)
            continue
        after_kill = load.kill_at is not None and sent_at > load.kill_at
        if status == 202:
            result.accepted.append(body["jobId"])
            if after_kill:
                result.accepted_after_kill.append(body["jobId"])
                if load.first_accept_after_kill is None:
                    load.first_accept_after_kill = time.monotonic()
        elif status == 503 and "jobIds" in body:
            result.unconfirmed.extend(body["jobIds"])
            await asyncio.sleep(0.02)
        elif status == 503:
            result.unavailable += 1
            await asyncio.sleep(0.02)
        else:
            raise UnexpectedAnswer(f"unexpected answer {status}: {body}")


async def _load(
    setup: SentinelSetup,
    producer_url: str,
    result: DrillResult,
    before: int,
    after: int,
    posters: int,
    deadline_s: float,
) -> float:
    """Post until ``before`` jobs were accepted, kill the primary, revive it once the
    failover is done, post until ``after`` more were accepted; returns the kill's
    wall-clock time."""
    load = _Load(result)
    deadline = time.monotonic() + deadline_s
    async with ClientSession(timeout=ClientTimeout(total=30)) as session:
        tasks = [
            asyncio.create_task(_post_forever(session, producer_url, load)) for _ in range(posters)
        ]
        try:
            started = time.monotonic()
            while len(result.accepted) < before:
                _check(tasks, deadline, "jobs accepted before the kill")
                await asyncio.sleep(0.01)
            result.accept_rate_per_s = len(result.accepted) / (time.monotonic() - started)
            old_port = await asyncio.to_thread(setup.kill_primary)
            load.kill_at, kill_wall = time.monotonic(), time.time()
            await asyncio.to_thread(setup.wait_for_failover, old_port)
            result.failover_s = time.monotonic() - load.kill_at
            await asyncio.to_thread(setup.revive, old_port)
            while len(result.accepted_after_kill) < after:
                _check(tasks, deadline, "jobs accepted after the failover")
                await asyncio.sleep(0.01)
        finally:
            load.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    assert load.first_accept_after_kill is not None
    assert load.kill_at is not None
    result.producer_resume_s = load.first_accept_after_kill - load.kill_at
    return kill_wall


def _check(tasks: list[asyncio.Task[None]], deadline: float, what: str) -> None:
    for task in tasks:
        if task.done():
            task.result()  # raises what ended it
    if time.monotonic() > deadline:
        raise TimeoutError(f"drill: timed out waiting for {what}")


def _settle(setup: SentinelSetup, result: DrillResult, kill_wall: float, timeout_s: float) -> None:
    """Wait for the worker to run everything that is queued, then count."""
    client = redis.Redis.from_url(setup.master_url(), decode_responses=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            groups = {g["name"]: g for g in client.xinfo_groups(KEYS.stream)}
            group = groups.get(KEYS.group)
            idle = group is not None and not group["lag"] and not group["pending"]
            if idle and not client.zcard(KEYS.delayed):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"drill: the worker did not drain the queue: {group}")
            time.sleep(0.1)
        runs = {job_id: int(n) for job_id, n in client.hgetall(DONE).items()}
        result.lost = [job_id for job_id in result.accepted if job_id not in runs]
        result.duplicates = sum(n - 1 for n in runs.values() if n > 1)
        result.runs_of_unconfirmed = sum(1 for job_id in result.unconfirmed if job_id in runs)
        finished = []
        for job_id in result.accepted_after_kill:
            at = sync_record(client, job_id, KEYS).get("finished_at")
            if at:
                finished.append(datetime.fromisoformat(at).timestamp())
        result.worker_resume_s = min(finished) - kill_wall
    finally:
        client.close()


def run_drill(
    directory: Path,
    *,
    min_replicas: int,
    before: int = 300,
    after: int = 300,
    posters: int = 8,
    concurrency: int = 16,
    replicas: int = 1,
    down_after_ms: int = 1000,
    deadline_s: float = 120.0,
) -> DrillResult:
    """One failover under load (see the module docstring)."""
    result = DrillResult(min_replicas)
    setup = SentinelSetup(directory / "redis", replicas=replicas, down_after_ms=down_after_ms)
    types = directory / "types.yaml"
    types.write_text(TYPES_FILE)
    setup.start()
    producer: ProducerProcess | None = None
    worker = WorkerProcess(
        setup.url,
        "drill-w1",
        "--concurrency",
        str(concurrency),
        log_dir=directory,
        watch_url=setup.master_url(),
    )
    try:
        worker.start()
        worker.wait_ready()
        producer = ProducerProcess(
            setup.url,
            JOBQUEUE_JOB_TYPES_FILE=str(types),
            JOBQUEUE_ENQUEUE_MIN_REPLICAS=str(min_replicas),
            JOBQUEUE_ENQUEUE_REPLICAS_TIMEOUT_MS="500",
        )
        kill_wall = asyncio.run(
            _load(setup, producer.url, result, before, after, posters, deadline_s)
        )
        _settle(setup, result, kill_wall, deadline_s)
        result.worker_restarted = worker.poll() is not None
        result.producer_restarted = producer.process.poll() is not None
        return result
    except UnexpectedAnswer as exc:
        assert producer is not None
        why = errors_in_log(producer.log_path.read_text(errors="replace"))
        raise UnexpectedAnswer(f"{exc}\nthe producer's log of it:\n{why}") from exc
    except BaseException:
        print(f"worker log:\n{worker.output()}")
        if producer is not None:
            print(f"producer log:\n{producer.output()}")
        raise
    finally:
        worker.stop()
        if producer is not None:
            producer.stop()
        setup.stop()
