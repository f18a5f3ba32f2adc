"""``jobqueue dev`` end to end: real Redis, real ``jobqueue worker`` processes.

Each test runs ``jobqueue dev --no-live`` as a child process on a JobQueue of the
testing app with short windows, enqueues jobs with the Python client (or the producer
API), and checks what happened in Redis and to the processes dev started.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path

import pytest
import redis
from local.dev_process import DevProcess, pid_alive
from support.redis_server import RedisServer, free_port

from jobqueue.core.client import Client, NewJob
from jobqueue.core.keys import QueueKeys
from jobqueue.core.status import JobState

KEYS = QueueKeys()
QUEUE_YAML = """
apiVersion: jobqueue.dev/v1alpha1
kind: JobQueue
metadata:
  name: t
spec:
  jobTimeoutSeconds: 10
  visibilityTimeoutSeconds: 2
  worker:
    image: unused-locally
    app: jobqueue.worker.testing:app
    concurrency: 2
  scaling:
    minReplicas: 0
    maxReplicas: 3
    lagPerReplica: 5
    scaleDownStabilizationSeconds: 2
    idleSecondsBeforeZero: 2
    pollIntervalSeconds: 0.3
"""


def queue_file(tmp_path: Path) -> str:
    path = tmp_path / "queue.yaml"
    path.write_text(QUEUE_YAML)
    return str(path)


def states(client: redis.Redis, job_ids: list[str]) -> dict[str, str]:
    """Each job's state as the Python client reads it (a queued job's record is only its
    entry id: the client derives the rest)."""
    kwargs = client.connection_pool.connection_kwargs
    url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"
    with Client.from_url(url) as jobs:
        return {
            job_id: str(info.state if (info := jobs.get(job_id)) else None) for job_id in job_ids
        }


def enqueue(url: str, jobs: list[NewJob]) -> list[str]:
    with Client.from_url(url) as client:
        return [enqueued.job_id for enqueued in client.enqueue_many(jobs)]


@pytest.mark.slow
def test_a_burst_starts_workers_every_job_completes_and_workers_stop_when_idle(
    tmp_path: Path, redis_url: str, sync_redis: redis.Redis, start_dev
) -> None:
    dev: DevProcess = start_dev(
        "-f", queue_file(tmp_path), "--port", "0", "--exit-when-idle", redis_url=redis_url
    )
    dev.wait_for_line(r"replicas=0/0")  # given an idle queue scaled to zero

    # When a burst arrives
    recorded = enqueue(redis_url, [NewJob("record", {"into": "done"}) for _ in range(40)])
    slow = enqueue(redis_url, [NewJob("sleep", {"ms": 300}) for _ in range(30)])

    # Then workers start, every job succeeds once, and dev exits once scaled to zero.
    assert dev.wait_exit() == 0, dev.output
    assert dev.max_replicas_seen() >= 2, dev.output
    assert set(states(sync_redis, recorded + slow).values()) == {JobState.SUCCEEDED}
    runs = sync_redis.hgetall("done")
    assert set(runs) == set(recorded)
    assert sync_redis.xlen(KEYS.dead) == 0
    assert "queue idle at its minimum replicas" in dev.output
    # The outcome counts shown come from the workers' /metrics, read over HTTP.
    last_poll = [line for line in dev.lines if line.startswith("t=")][-1]
    assert "succeeded=70" in last_poll, dev.output
    assert dev.worker_pids(), dev.output
    assert not any(pid_alive(pid) for pid in dev.child_pids())
    # The stopped workers' consumers were removed from the group (they held nothing).
    assert sync_redis.xinfo_consumers(KEYS.stream, KEYS.group) == []


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_loses_nothing(
    tmp_path: Path, redis_url: str, sync_redis: redis.Redis, start_dev
) -> None:
    dev: DevProcess = start_dev(
        "-f", queue_file(tmp_path), "--port", "0", "--exit-when-idle", redis_url=redis_url
    )
    dev.wait_for_line(r"replicas=0/0")
    slow = enqueue(redis_url, [NewJob("sleep", {"ms": 1200}) for _ in range(16)])
    recorded = enqueue(redis_url, [NewJob("record", {"into": "done"}) for _ in range(20)])

    # Given a worker holding jobs in flight
    def busy_consumer() -> str | None:
        try:
            pending = sync_redis.xpending_range(KEYS.stream, KEYS.group, "-", "+", 100)
        except redis.ResponseError:  # NOGROUP: no worker has created the group yet
            return None
        for entry in pending:
            if entry["consumer"] in dev.worker_pids():
                return str(entry["consumer"])
        return None

    dev.wait_until(lambda: busy_consumer() is not None)
    victim = busy_consumer()
    assert victim is not None
    victim_pid = dev.worker_pids()[victim]

    # When it is SIGKILLed mid-run
    os.kill(victim_pid, signal.SIGKILL)

    # Then dev replaces it, its jobs are reclaimed by the others, and every job succeeds.
    dev.wait_for_line(rf"{victim} died \(killed by SIGKILL\); replacing it")
    assert dev.wait_exit() == 0, dev.output
    assert set(states(sync_redis, slow + recorded).values()) == {JobState.SUCCEEDED}
    assert set(sync_redis.hgetall("done")) == set(recorded)
    assert sync_redis.xlen(KEYS.dead) == 0
    assert not any(pid_alive(pid) for pid in dev.child_pids())
    # Its jobs reclaimed, the killed worker's consumer was removed with the others.
    assert sync_redis.xinfo_consumers(KEYS.stream, KEYS.group) == []


@pytest.mark.slow
def test_ctrl_c_stops_every_process_and_keeps_the_queue_in_the_private_redis(
    tmp_path: Path, start_dev
) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    dev: DevProcess = start_dev(
        "-f", queue_file(tmp_path), "--port", str(port), "--data-dir", str(data_dir)
    )
    url = dev.wait_for_line(r"private Redis on (redis://\S+)").group(1)
    producer = f"http://127.0.0.1:{port}"
    dev.wait_until(lambda: _ready(producer))

    # Given jobs posted to the producer API and some of them running
    job_ids = [_post_job(producer, {"type": "sleep", "payload": {"ms": 2000}}) for _ in range(12)]
    private = redis.Redis.from_url(url, decode_responses=True)
    dev.wait_until(lambda: _pending(private) > 0)
    private.close()

    # When dev gets Ctrl-C (SIGINT)
    dev.process.send_signal(signal.SIGINT)

    # Then it exits cleanly, leaving no worker, producer or Redis process behind...
    assert dev.wait_exit() == 0, dev.output
    assert "process(es) stopped" in dev.output
    assert not any(pid_alive(pid) for pid in dev.child_pids())
    assert not _answers(url)
    # ...and every job is either done (in-flight ones finished in their grace period)
    # or still queued in the private Redis's data directory: nothing was lost.
    server = RedisServer(data_dir / "redis", appendonly=True)
    server.start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        seen = states(client, job_ids)
        client.close()
    finally:
        server.stop()
    assert set(seen.values()) <= {JobState.SUCCEEDED, JobState.QUEUED}, seen
    assert JobState.SUCCEEDED in seen.values()


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _post_job(base: str, body: dict[str, object]) -> str:
    request = urllib.request.Request(
        f"{base}/jobs",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 202
        return str(json.loads(response.read())["jobId"])


def _pending(client: redis.Redis) -> int:
    try:
        groups = client.xinfo_groups(KEYS.stream)
    except redis.ResponseError:
        return 0
    return sum(int(g["pending"]) for g in groups)


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


@pytest.mark.slow
def test_a_private_redis_killed_mid_run_is_restarted_from_its_aof_and_loses_nothing(
    tmp_path: Path, start_dev
) -> None:
    data_dir = tmp_path / "data"
    dev: DevProcess = start_dev(
        "-f", queue_file(tmp_path), "--port", "0", "--data-dir", str(data_dir), "--exit-when-idle"
    )
    found = dev.wait_for_line(r"private Redis on (redis://\S+) \(pid (\d+)")
    url, redis_pid = found.group(1), int(found.group(2))
    slow = enqueue(url, [NewJob("sleep", {"ms": 300}) for _ in range(30)])
    recorded = enqueue(url, [NewJob("record", {"into": "done"}) for _ in range(20)])
    private = redis.Redis.from_url(url, decode_responses=True)
    dev.wait_until(lambda: _pending(private) > 0)
    private.close()

    # When the private Redis is SIGKILLed while workers hold jobs
    os.kill(redis_pid, signal.SIGKILL)

    # Then dev restarts it from its AOF, the workers carry on, and every job succeeds.
    dev.wait_for_line(r"private Redis back")
    assert dev.wait_exit() == 0, dev.output
    server = RedisServer(data_dir / "redis", appendonly=True)
    server.start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        seen = states(client, slow + recorded)
        done = client.hgetall("done")
        client.close()
    finally:
        server.stop()
    assert set(seen.values()) == {JobState.SUCCEEDED}, seen
    assert set(done) == set(recorded)


@pytest.mark.slow
def test_sigterm_then_ctrl_c_kills_at_once_and_the_next_run_finishes_the_jobs(
    tmp_path: Path, start_dev
) -> None:
    data_dir = tmp_path / "data"
    args = ["-f", queue_file(tmp_path), "--port", "0", "--data-dir", str(data_dir)]
    dev: DevProcess = start_dev(*args)
    url = dev.wait_for_line(r"private Redis on (redis://\S+)").group(1)
    job_ids = enqueue(url, [NewJob("sleep", {"ms": 3000}) for _ in range(6)])
    private = redis.Redis.from_url(url, decode_responses=True)
    dev.wait_until(lambda: _pending(private) > 0)
    private.close()

    # Given dev stopping gracefully on SIGTERM while jobs run for seconds more,
    dev.process.send_signal(signal.SIGTERM)
    dev.wait_for_line(r"SIGTERM: stopping everything")
    dev.wait_for_line(r"stopping \d+ process\(es\)")
    # when Ctrl-C comes again, then dev kills what is left and exits, leaving nothing.
    dev.process.send_signal(signal.SIGINT)
    assert dev.wait_exit() == 0, dev.output
    assert "SIGINT again: killing what is left" in dev.output
    assert not any(pid_alive(pid) for pid in dev.child_pids())

    # The killed jobs stayed pending in the private Redis's data: the next run
    # reclaims and finishes every one of them.
    again: DevProcess = start_dev(*args, "--exit-when-idle")
    assert again.wait_exit() == 0, again.output
    server = RedisServer(data_dir / "redis", appendonly=True)
    server.start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        seen = states(client, job_ids)
        consumers = client.xinfo_consumers(KEYS.stream, KEYS.group)
        client.close()
    finally:
        server.stop()
    assert set(seen.values()) == {JobState.SUCCEEDED}, seen
    assert consumers == []  # the killed run's consumers were removed once emptied


def test_even_a_sigkilled_dev_leaves_no_process_behind(tmp_path: Path, start_dev) -> None:
    port = free_port()
    dev: DevProcess = start_dev(
        "-f", queue_file(tmp_path), "--port", str(port), "--data-dir", str(tmp_path / "data")
    )
    found = dev.wait_for_line(r"private Redis on (redis://\S+) \(pid (\d+)")
    url, redis_pid = found.group(1), int(found.group(2))
    enqueue(url, [NewJob("sleep", {"ms": 500}) for _ in range(30)])
    dev.wait_until(lambda: len(dev.worker_pids()) >= 2)
    children = [*dev.child_pids(), redis_pid]

    # When dev itself is SIGKILLed (no chance to stop anything),
    dev.process.kill()
    dev.wait_exit()

    # then the kernel tells every child (PR_SET_PDEATHSIG) and each one stops.
    dev.wait_until(lambda: not any(pid_alive(pid) for pid in children), timeout_s=60)
