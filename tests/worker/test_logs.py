"""What a worker logs: its handlers at start, one line per final outcome, JSON on demand."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import orjson
import redis
from support.worker_process import JOBQUEUE, TESTING_APP

from jobqueue.core.wire import Job


def run_burst(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "JOBQUEUE_BACKOFF_BASE_S": "0.01"}
    env.pop("JOBQUEUE_LOG_LEVEL", None)
    env.pop("JOBQUEUE_LOG_FORMAT", None)
    command = [str(JOBQUEUE), "worker", TESTING_APP, "--burst", "--http-port", "0"]
    return subprocess.run(
        [*command, "--consumer", "pod-7", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def json_lines(stderr: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def about(lines: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("job_id") == job_id]


def test_every_final_outcome_is_one_line_with_the_jobs_fields(
    sync_redis: redis.Redis, redis_url: str
) -> None:
    fatal = Job(type="record", payload={}, extra={"trace_id": "trace-1"})
    exhausted = Job(type="fail", payload={})
    fine = Job(type="noop", payload={})
    for job in (fatal, exhausted, fine):
        sync_redis.xadd("jobs:work", job.fields())  # type: ignore[arg-type]
    sync_redis.xadd("jobs:work", {"id": "no-type", "payload": "{}"})

    done = run_burst(redis_url, "--max-attempts", "2", "--log-format", "json")

    assert done.returncode == 0, done.stderr
    lines = json_lines(done.stderr)
    assert lines, done.stderr
    assert all(line["component"] == "worker" and line["pod"] == "pod-7" for line in lines)
    (start,) = [line for line in lines if "handlers:" in line["message"]]
    assert "crash, credit, echo, fail, hold, noop, record, sleep" in start["message"]

    (dead,) = about(lines, fatal.id)
    assert dead["level"] == "ERROR"
    assert (dead["job_type"], dead["queue"], dead["attempts"]) == ("record", "jobs:work", 1)
    assert (dead["reason"], dead["trace_id"]) == ("fatal", "trace-1")
    assert "Fatal: record needs payload field 'into'" in dead["traceback"]

    retried, final = about(lines, exhausted.id)
    assert (retried["level"], retried["attempts"]) == ("WARNING", 1)
    assert "retry in" in retried["message"]
    assert (final["level"], final["reason"], final["attempts"]) == ("ERROR", "attempts", 2)
    assert "RuntimeError: failing on purpose" in final["traceback"]

    (malformed,) = about(lines, "no-type")
    assert (malformed["level"], malformed["reason"]) == ("ERROR", "malformed")
    assert about(lines, fine.id) == []  # successes only at DEBUG


def test_debug_adds_a_start_and_a_success_line_per_job(
    sync_redis: redis.Redis, redis_url: str
) -> None:
    job = Job(type="noop", payload={})
    sync_redis.xadd("jobs:work", job.fields())  # type: ignore[arg-type]

    done = run_burst(redis_url, "--log-format", "json", "--log-level", "debug")

    assert done.returncode == 0, done.stderr
    started, succeeded = about(json_lines(done.stderr), job.id)
    assert (started["level"], started["attempts"], started["job_type"]) == ("DEBUG", 1, "noop")
    assert "started" in started["message"]
    assert succeeded["message"].endswith("succeeded")


def test_text_is_the_default_and_a_dead_letter_shows_its_traceback(
    sync_redis: redis.Redis, redis_url: str
) -> None:
    job = Job(type="record", payload={})
    sync_redis.xadd("jobs:work", job.fields())  # type: ignore[arg-type]

    done = run_burst(redis_url)

    assert done.returncode == 0, done.stderr
    assert json_lines(done.stderr) == []
    text = done.stderr
    assert f"ERROR jobqueue.worker job {job.id} (record) dead-lettered after 1 attempts" in text
    assert "Traceback (most recent call last):" in text
