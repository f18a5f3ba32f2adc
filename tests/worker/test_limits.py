"""Rate and concurrency limits per job type, across real worker processes on one Redis.

``LIMIT_TEST_JOBS`` sets how many jobs the rate test runs (500 by default: 10 s at the
limit; the issue's figure is 2,000).
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import orjson
import pytest
import redis

from jobqueue.core.errors import ConfigError
from jobqueue.core.keys import QueueKeys
from jobqueue.core.limits import TypeLimit
from jobqueue.core.wire import new_job_id, utc_now_iso
from jobqueue.worker.settings import WorkerSettings
from tests.support.worker_process import WorkerProcess

KEYS = QueueKeys()
STAMPS = "limits:stamps"


def enqueue_many(client: redis.Redis, job_type: str, count: int, ms: int = 0) -> list[str]:
    ids = [new_job_id() for _ in range(count)]
    payload = orjson.dumps({"into": STAMPS, "ms": ms}).decode()
    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            fields = {"id": job_id, "type": job_type, "payload": payload, "priority": "5"}
            fields |= {"enqueued_at": utc_now_iso(), "attempts": "0"}
            pipe.xadd(KEYS.stream, fields)  # type: ignore[arg-type]
        pipe.execute()
    return ids


def stamps(
    client: redis.Redis,
) -> tuple[dict[str, list[float]], dict[str, list[float]], list[str]]:
    """Start times by job id, end times by job id, and the attempts each start saw."""
    starts: dict[str, list[float]] = {}
    ends: dict[str, list[float]] = {}
    attempts: list[str] = []
    for line in client.lrange(STAMPS, 0, -1):
        kind, at, job_id, *rest = line.split()
        if kind == "start":
            starts.setdefault(job_id, []).append(float(at))
            attempts += rest
        else:
            ends.setdefault(job_id, []).append(float(at))
    return starts, ends, attempts


def max_in_window(times: list[float], window_s: float) -> int:
    """The most of ``times`` inside any half-open window [t, t + window_s)."""
    times = sorted(times)
    best, low = 0, 0
    for high, t in enumerate(times):
        while times[low] <= t - window_s:
            low += 1
        best = max(best, high - low + 1)
    return best


def _span(starts: dict[str, list[float]]) -> float:
    times = [t for v in starts.values() for t in v]
    return max(times) - min(times)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals [start, end) open at one time."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = running = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best


def wait_for(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def workers(redis_url: str, tmp_path: Path, env: dict[str, str], *args: str) -> list[WorkerProcess]:
    procs = [
        WorkerProcess(redis_url, f"limited-{i}", *args, log_dir=tmp_path, env=env).start()
        for i in range(3)
    ]
    for proc in procs:
        proc.wait_ready()
    return procs


@pytest.mark.slow
def test_a_rate_limit_holds_across_three_worker_processes(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    # Given three worker processes sharing a limit of 50 stamp jobs per second,
    env = {"JOBQUEUE_RATE_LIMITS": "stamp=50/1s"}
    procs = workers(redis_url, tmp_path, env)
    try:
        # when 500 jobs are enqueued at once (10 s of work at the limit),
        count = int(os.environ.get("LIMIT_TEST_JOBS", "500"))
        ids = enqueue_many(sync_redis, "stamp", count)
        timeout_s = 60 + count / 50 * 3
        wait_for(lambda: len(stamps(sync_redis)[1]) >= len(ids), timeout_s, "every job to finish")
    finally:
        for proc in procs:
            proc.stop()
    # then every job ran once, on its first attempt, none dead-lettered,
    starts, _, attempts = stamps(sync_redis)
    assert sorted(starts) == sorted(ids)
    assert all(len(times) == 1 for times in starts.values())
    assert set(attempts) == {"0"}
    assert sync_redis.xlen(KEYS.dead) == 0
    # and no second saw more than 50 starts.
    busiest = max_in_window([t for times in starts.values() for t in times], 1.0)
    order = {job_id: n for n, job_id in enumerate(ids)}
    first = sorted(ids, key=lambda job_id: starts[job_id][0])
    late = sum(1 for a, b in itertools.pairwise(first) if order[a] > order[b])
    print(f"most starts in any 1 s window: {busiest} (limit 50); {late} starts before an")
    print(f"earlier-enqueued job's, {len(ids)} jobs in {_span(starts):.1f} s")
    # The limiter grants one start every 20 ms by Redis's clock; a handler's own clock
    # reads its start a scheduling delay later. One window of those readings holds a 51st
    # start only when a start 1 s earlier was delayed more than a later one (seen once, at
    # load 13); a 52nd would need two granted starts closer than 20 ms, or a delay
    # difference above 20 ms.
    assert busiest <= 50 + 1


@pytest.mark.slow
def test_a_concurrency_limit_holds_across_processes_and_a_killed_workers_leases_come_back(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    # Given three workers sharing "at most 3 stamp jobs running", leases of 3 s,
    env = {"JOBQUEUE_CONCURRENCY_LIMITS": "stamp=3"}  # leases last the visibility timeout
    procs = workers(redis_url, tmp_path, env, "--visibility-timeout-s", "3")
    killed_at = 0.0
    try:
        # when 30 jobs of 300 ms are enqueued and a worker is SIGKILLed while it holds some,
        ids = enqueue_many(sync_redis, "stamp", 30, ms=300)
        victim = procs[0]
        leases = KEYS.limit_leases("stamp")
        wait_for(
            lambda: _leased_by(sync_redis, victim.consumer, leases), 30, "a lease on the victim"
        )
        victim.kill()
        killed_at = time.time()
        wait_for(lambda: len(stamps(sync_redis)[1]) >= len(ids), 120, "every job to finish")
    finally:
        for proc in procs:
            proc.stop()
    starts, ends, attempts = stamps(sync_redis)
    # then every job finished, none dead-lettered nor charged an attempt,
    assert set(ends) == set(ids)
    assert set(attempts) == {"0"}
    assert sync_redis.xlen(KEYS.dead) == 0
    # and never were more than 3 running at once (a killed job ran until the kill).
    intervals = []
    for job_id, times in starts.items():
        for at, following in zip(times, [*times[1:], float("inf")], strict=True):
            # A start with no end before the next start ran on the killed worker: until
            # the kill.
            end = min((e for e in ends.get(job_id, []) if at <= e < following), default=None)
            if end is None:
                assert at <= killed_at
                end = killed_at
            intervals.append((at, end))
    print(f"most running at once: {max_overlap(intervals)} (limit 3)")
    assert max_overlap(intervals) <= 3
    assert any(len(times) > 1 for times in starts.values()), "the kill interrupted no job"


def _leased_by(client: redis.Redis, consumer: str, leases: str) -> bool:
    """Whether ``consumer`` runs a job holding a lease (started, not ended)."""
    try:
        pending = client.xpending_range(KEYS.stream, KEYS.group, "-", "+", 100, consumer)
    except redis.ResponseError:
        return False
    held = set(client.zrange(leases, 0, -1))
    starts, ends, _ = stamps(client)
    for entry in pending:
        if entry["message_id"] not in held:
            continue
        for _, fields in client.xrange(KEYS.stream, entry["message_id"], entry["message_id"]):
            if fields["id"] in starts and fields["id"] not in ends:
                return True
    return False


def test_limits_are_read_from_the_environment() -> None:
    env = {
        "JOBQUEUE_RATE_LIMITS": "email=50/1s, report=10/1m",
        "JOBQUEUE_CONCURRENCY_LIMITS": "report=3",
    }
    settings = WorkerSettings.from_env(env)
    assert settings.limits == (
        TypeLimit("email", 50, 1.0, 0),
        TypeLimit("report", 10, 60.0, 3),
    )
    assert settings.limits[0].interval_ms == 21  # 20 ms and the start guard


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOBQUEUE_RATE_LIMITS", "email=50"),
        ("JOBQUEUE_RATE_LIMITS", "email=0/1s"),
        ("JOBQUEUE_RATE_LIMITS", "email=5/1d"),
        ("JOBQUEUE_RATE_LIMITS", "email=5/1s,email=6/1s"),
        ("JOBQUEUE_CONCURRENCY_LIMITS", "report=0"),
        ("JOBQUEUE_CONCURRENCY_LIMITS", "report"),
        ("JOBQUEUE_LIMIT_LEASE_TTL_S", "1"),
        ("JOBQUEUE_LIMIT_LEASE_TTL_S", "-1"),
    ],
)
def test_a_bad_limit_is_a_clear_error(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name.removeprefix("JOBQUEUE_").lower()[:5] + "|" + name):
        WorkerSettings.from_env({name: value})
