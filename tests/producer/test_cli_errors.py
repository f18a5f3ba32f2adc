"""Bad connections are one clear line each, never a traceback: a server that is not
Redis, a database that is not a number."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from support.redis_server import free_port

from jobqueue.cli.main import cli

JOBQUEUE = Path(sys.executable).with_name("jobqueue")


@pytest.fixture
def http_server() -> Iterator[int]:
    """A TCP server that answers every connection as a web server would: HTTP 400."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


def test_a_client_command_against_a_web_server_says_it_is_not_redis(http_server: int) -> None:
    url = f"redis://:s3cret@127.0.0.1:{http_server}/0"

    result = CliRunner().invoke(cli, ["stats", "--redis-url", url])

    assert result.exit_code == 1
    assert "the server at 127.0.0.1 does not answer as Redis does" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "s3cret" not in result.output


def test_a_worker_against_a_web_server_exits_with_one_line(http_server: int) -> None:
    done = subprocess.run(
        [str(JOBQUEUE), "worker", "jobqueue.worker.testing:app", "--http-port", "0"],
        env={"REDIS_URL": f"redis://127.0.0.1:{http_server}/0", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "does not answer as Redis does" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("url", ["redis://localhost:6379/abc", "rediss://h:1/0x"])
def test_a_database_that_is_not_a_number_is_refused(url: str) -> None:
    result = CliRunner().invoke(cli, ["stats"], env={"REDIS_URL": url})

    assert result.exit_code == 1
    assert "the Redis URL's database must be a number" in result.output


def test_a_producer_against_a_web_server_answers_503_and_logs_one_line(
    http_server: int, tmp_path: Path
) -> None:
    port = str(free_port())
    log_path = tmp_path / "producer.log"
    env = {"REDIS_URL": f"redis://127.0.0.1:{http_server}/0", "PATH": "/usr/bin:/bin"}
    command = [str(JOBQUEUE), "producer", "--host", "127.0.0.1", "--port", port]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
    try:
        body = b'{"type": "email", "payload": {"to": "a@b.c", "template": "welcome"}}'
        status, answer = post_when_listening(f"http://127.0.0.1:{port}/jobs", body)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    assert status == 503
    assert orjson.loads(answer)["detail"] == "the configured Redis URL is not a Redis"
    text = log_path.read_text()
    assert "does not answer as Redis" in text
    assert "Traceback" not in text


def post_when_listening(url: str, body: bytes) -> tuple[int, bytes]:
    deadline = time.monotonic() + 60
    while True:
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
