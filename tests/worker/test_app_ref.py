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
