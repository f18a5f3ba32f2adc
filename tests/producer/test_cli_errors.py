"""Bad connections are one clear line each, never a traceback: a server that is not
Redis, a database that is not a number."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

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
