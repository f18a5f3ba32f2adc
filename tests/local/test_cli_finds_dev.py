"""The client commands find the queue a running ``jobqueue dev`` serves, as the README
tells a new user to run them: from another terminal, with no flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from local.dev_process import DevProcess
from support.redis_server import free_port

JOBQUEUE = Path(sys.executable).with_name("jobqueue")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(JOBQUEUE), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.slow
def test_stats_from_another_terminal_reads_local_modes_queue(tmp_path: Path) -> None:
    # Given a user's environment: no REDIS_URL, and (maybe) a system Redis on 6379
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "JOBQUEUE_"))}
    env["JOBQUEUE_DEV_STATE_FILE"] = str(tmp_path / "state" / "dev.json")
    env["PYTHONUNBUFFERED"] = "1"
    port = str(free_port())
    dev = DevProcess(["--port", port, "--data-dir", str(tmp_path / "data")], env)
    try:
        # When local mode has started, it says what to run
        hint = dev.wait_for_line(r"from another terminal: (\S+) stats")
        assert Path(hint.group(1)).name == "jobqueue"
        enqueued = cli(env, "enqueue", "email", '{"to": "a@b.c", "template": "welcome"}')
        stats = cli(env, "stats", "--json")
    finally:
        dev.stop()
    after = cli(env, "stats", "--redis-url", f"redis://127.0.0.1:{free_port()}/0")

    # Then the commands, given no flags, used local mode's Redis and queue
    assert enqueued.returncode == 0, enqueued.stderr
    assert stats.returncode == 0, stats.stderr
    assert "using the queue of jobqueue dev" in stats.stderr
    data = orjson.loads(stats.stdout)
    assert data["stream"] == "jobs:work"  # the demo queue's stream
    assert data["entriesAdded"] >= 1
    # and once it stopped, its state file is gone and nothing follows it
    assert not (tmp_path / "state" / "dev.json").exists()
    assert "using the queue of jobqueue dev" not in after.stderr
