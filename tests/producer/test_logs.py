"""``jobqueue producer`` logs as configured: JSON lines, and an access log when asked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from support.redis_server import free_port

JOBQUEUE = Path(sys.executable).with_name("jobqueue")


def serve_and_call(redis_url: str, tmp_path: Path, *flags: str) -> str:
    """Start the producer with ``flags``, GET /healthz once it answers, stop it; its log."""
    port = free_port()
    log_path = tmp_path / "producer.log"
    env = {**os.environ, "REDIS_URL": redis_url}
    for name in ("JOBQUEUE_LOG_LEVEL", "JOBQUEUE_LOG_FORMAT", "JOBQUEUE_PRODUCER_ACCESS_LOG"):
        env.pop(name, None)
    command = [str(JOBQUEUE), "producer", "--host", "127.0.0.1", "--port", str(port), *flags]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stderr=log, stdout=log, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"producer did not answer: {log_path.read_text()}")
                time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    return log_path.read_text()


def test_json_lines_and_an_access_log_when_asked(redis_url: str, tmp_path: Path) -> None:
    text = serve_and_call(redis_url, tmp_path, "--log-format", "json", "--access-log")

    lines = [orjson.loads(line) for line in text.splitlines()]
    assert all(line["component"] == "producer" for line in lines)
    assert any(line["message"].startswith("producer on http://") for line in lines)
    access = [line for line in lines if line["logger"] == "aiohttp.access"]
    # One line per GET /healthz: more than one when a GET timed out on a loaded machine
    # and was sent again.
    assert access, text
    assert all("GET /healthz" in line["message"] for line in access), text


def test_no_access_log_by_default_and_the_level_applies(redis_url: str, tmp_path: Path) -> None:
    text = serve_and_call(redis_url, tmp_path, "--log-level", "warning")

    assert "GET /healthz" not in text
    assert "producer on http://" not in text  # an INFO line, below the level
