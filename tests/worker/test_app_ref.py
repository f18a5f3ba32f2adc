"""``jobqueue worker myapp:app`` finds an app module in the directory it is run from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis

from jobqueue.core.wire import Job

JOBQUEUE = Path(sys.executable).with_name("jobqueue")

APP_MODULE = """
from jobqueue.worker.app import App, JobContext

app = App("myapp")


@app.handler("greet")
async def greet(ctx: JobContext) -> None:
    await ctx.redis.hset("greeted", ctx.job.id, ctx.payload["name"])
"""


def test_an_app_beside_the_working_directory_runs_its_jobs(
    tmp_path: Path, sync_redis: redis.Redis, redis_url: str
) -> None:
    (tmp_path / "myapp.py").write_text(APP_MODULE)
    job = Job(type="greet", payload={"name": "Ada"})
    sync_redis.xadd("jobs:work", job.fields())  # type: ignore[arg-type]

    done = subprocess.run(
        [str(JOBQUEUE), "worker", "myapp:app", "--burst", "--http-port", "0"],
        cwd=tmp_path,
        env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert sync_redis.hget("greeted", job.id) == "Ada"


def start_worker(tmp_path: Path, app_ref: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(JOBQUEUE), "worker", app_ref, "--burst", "--http-port", "0"],
        cwd=tmp_path,
        env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_missing_attribute_or_an_app_without_handlers_is_one_clear_line(
    tmp_path: Path, redis_url: str
) -> None:
    (tmp_path / "okapp.py").write_text(
        "from jobqueue.worker.app import App\nempty = App('empty')\nnot_an_app = 3\n"
    )

    missing = start_worker(tmp_path, "okapp:missing", redis_url)
    empty = start_worker(tmp_path, "okapp:empty", redis_url)
    wrong = start_worker(tmp_path, "okapp:not_an_app", redis_url)

    assert missing.returncode == 2
    assert "Error: module 'okapp' has no attribute 'missing'" in missing.stderr
    assert empty.returncode == 2
    assert "okapp:empty has no handlers" in empty.stderr
    assert "is not a jobqueue.worker.App (got int)" in wrong.stderr
    for done in (missing, empty, wrong):
        assert "Traceback" not in done.stderr
