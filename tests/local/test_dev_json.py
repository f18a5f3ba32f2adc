"""``jobqueue dev --log-format json``: local mode's own lines and its children's logs are
JSON objects, one a line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
from support.redis_server import free_port

JOBQUEUE = Path(sys.executable).with_name("jobqueue")


def test_polls_events_and_the_producers_log_are_json_lines(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "JOBQUEUE_"))}
    env["JOBQUEUE_DEV_STATE_FILE"] = str(tmp_path / "dev.json")
    data = tmp_path / "data"
    command = [str(JOBQUEUE), "dev", "--log-format", "json", "--duration-s", "3"]
    command += ["--port", str(free_port()), "--data-dir", str(data)]

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(line) for line in (done.stdout + done.stderr).splitlines() if line]
    assert all(line["component"] == "dev" for line in lines)
    polls = [line for line in lines if line["message"] == "poll"]
    assert polls, lines
    assert {"lag", "pending", "oldest_waiting_s", "replicas", "queue"} <= set(polls[-1])
    assert any(line.get("event") and "private Redis on" in line["message"] for line in lines)
    producer = (data / "logs" / "producer.log").read_text().splitlines()
    records = [orjson.loads(line) for line in producer if line.startswith("{")]
    assert any(r["message"].startswith("producer on http://") for r in records), producer
    assert all(r["component"] == "producer" for r in records)
