"""A stop signal at any moment after spawn stops the worker cleanly, never mid-batch.

Signals are caught from the first line of the ``worker`` command, before the app is
imported: a SIGTERM while a slow app imports once killed the process by the signal
(exit -15); the loop's own handlers take over before the first read, so no moment
exists at which the worker holds entries and dies by the signal.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson
import pytest
import redis
from support.worker_process import WorkerProcess

from jobqueue.core.wire import new_job_id, utc_now_iso

STREAM, GROUP = "jobs:work", "workers"

SLOW_APP = """
import pathlib, time
from jobqueue.worker.testing import app
pathlib.Path({marker!r}).write_text("importing")
time.sleep(5)
"""


def backlog(client: redis.Redis, count: int) -> None:
    for _ in range(count):
        fields = {
            "id": new_job_id(),
            "type": "sleep",
            "payload": orjson.dumps({"ms": 50}).decode(),
            "priority": "5",
            "enqueued_at": utc_now_iso(),
            "attempts": "0",
        }
        client.xadd(STREAM, fields)  # type: ignore[arg-type]


def joined(client: redis.Redis, consumer: str) -> bool:
    try:
        consumers = client.xinfo_consumers(STREAM, GROUP)
    except redis.ResponseError:
        return False  # no group: nobody ever read
    return any(c["name"] == consumer for c in consumers)


def pending(client: redis.Redis) -> int:
    try:
        return int(client.xpending(STREAM, GROUP)["pending"])
    except redis.ResponseError:
        return 0


@pytest.mark.slow
def test_sigterm_while_the_app_imports_exits_cleanly_without_reading(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    # given a backlog and an app whose import takes seconds
    backlog(sync_redis, 20)
    marker = tmp_path / "importing"
    (tmp_path / "slow_app.py").write_text(SLOW_APP.format(marker=str(marker)))
    env = {"PYTHONPATH": str(tmp_path)}
    worker = WorkerProcess(redis_url, "slow", app_ref="slow_app:app", env=env, log_dir=tmp_path)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert worker.poll() is None, worker.output()
            assert time.monotonic() < deadline, "the app import never started"
            time.sleep(0.02)
        # when it is told to stop while importing
        worker.terminate()
        # then it exits 0 (it once died by the signal), having read nothing
        assert worker.wait(30) == 0, worker.output()
        assert "stop requested during start-up" in worker.output()
        assert not joined(sync_redis, "slow")
        assert sync_redis.xlen(STREAM) == 20
    finally:
        worker.stop()


@pytest.mark.slow
def test_a_stop_signal_right_after_spawn_never_leaves_entries_behind(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    # given a backlog of short jobs
    backlog(sync_redis, 300)
    # when workers are signalled at moments spread over their start-up, one at a time
    for run, delay_s in enumerate((0.0, 0.2, 0.5, 0.8, 1.2, 2.0)):
        consumer = f"w{run}"
        worker = WorkerProcess(redis_url, consumer, log_dir=tmp_path).start()
        time.sleep(delay_s)
        sig = signal.SIGINT if run % 2 else signal.SIGTERM
        worker.signal(sig)
        try:
            # 60 s: start-up (seconds under load) plus a graceful stop of 50 ms jobs;
            # a worker that missed the signal never exits, whatever the bound.
            code = worker.wait(60)
        finally:
            worker.stop()  # a failed wait leaves no worker running past the test
        # then each either stopped gracefully (every job it took finished and was
        # acknowledged) or ended by the signal (-15, or click's "Aborted!" for SIGINT)
        # before it ever joined the group
        if code != 0:
            assert code in (-sig, 1), worker.output()
            assert not joined(sync_redis, consumer), worker.output()
        assert pending(sync_redis) == 0, f"run {run} ({delay_s} s):\n{worker.output()}"
