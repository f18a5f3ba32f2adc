"""Local mode runs the JobQueue's cron schedules: in-process with a clock the test moves,
and end to end through ``jobqueue dev`` with a real worker running the scheduled job."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from local.dev_process import DevProcess
from local.test_dev import QUEUE_YAML
from support.records import sync_state

from jobqueue.core.client import AsyncClient
from jobqueue.core.status import JobState
from jobqueue.local.schedules import LocalSchedules
from jobqueue.operator.spec_workloads import ScheduleSpec

START = datetime(2026, 3, 1, 9, 59, 30, tzinfo=UTC)
SCHEDULES = """  schedules:
    - name: nightly
      cron: "* * * * *"
      type: record
      payload: {into: scheduled}
"""


async def test_due_ticks_enqueue_one_job_each_and_say_so(redis_url: str) -> None:
    now = [START]
    lines: list[str] = []
    schedule = ScheduleSpec.model_validate(
        {"name": "ping", "cron": "0 10 * * *", "type": "record", "payload": {"into": "x"}}
    )
    local = LocalSchedules([schedule], lines.append, clock=lambda: now[0])
    assert local.describe() == [
        "schedule ping: 0 10 * * * -> record job, next at 2026-03-01T10:00:00Z"
    ]

    async with AsyncClient.from_url(redis_url, stream="local:work") as client:
        assert await local.fire(client) == 0  # 09:59:30: nothing due
        now[0] = START + timedelta(seconds=31)
        assert await local.fire(client) == 1
        now[0] = START + timedelta(seconds=45)
        assert await local.fire(client) == 0  # the same tick: done already
        assert await client.redis.xlen("local:work") == 1
    assert len(lines) == 1
    assert lines[0].startswith("schedule ping: job ")
    assert lines[0].endswith(" for 2026-03-01T10:00:00Z")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_jobqueue_dev_runs_a_scheduled_job_on_a_worker(
    tmp_path: Path, redis_url: str, sync_redis: redis.Redis, start_dev
) -> None:
    path = tmp_path / "queue.yaml"
    path.write_text(QUEUE_YAML + SCHEDULES)
    dev: DevProcess = start_dev("-f", str(path), "--port", "0", redis_url=redis_url)
    dev.wait_for_line(r"schedule nightly: \* \* \* \* \* -> record job, next at ")

    # The next minute's tick (at most a minute away) enqueues a job a worker then runs
    fired = dev.wait_for_line(r"schedule nightly: job (\S+) for ", timeout_s=90)
    job_id = fired.group(1)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if sync_state(sync_redis, job_id) == JobState.SUCCEEDED:
            break
        time.sleep(0.2)  # polling an outcome, with a deadline
    assert sync_state(sync_redis, job_id) == JobState.SUCCEEDED, dev.output
    assert sync_redis.hexists("scheduled", job_id)
