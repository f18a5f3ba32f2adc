"""Redis refusing the worker's password or permissions is not an outage to wait out.

A wrong password was once retried forever while ``/readyz`` of an ACL-limited worker
answered 200 and the pod looked healthy. Now readiness fails, one clear line is logged,
and the worker exits with code 3 after ``JOBQUEUE_ACCESS_DENIED_EXIT_S``, so the pod's
status shows it.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
import redis
from support.redis_server import RedisServer, free_port
from support.worker_process import WorkerProcess

EXIT_ACCESS_DENIED = 3


def readyz(port: int) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
            return reply.status, orjson.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())
    except OSError:
        return 0, {}  # not serving yet


def run_denied(url: str, tmp_path: Path, consumer: str) -> tuple[int, str, list[int]]:
    """Run a worker on ``url`` until it exits; its exit code, log and /readyz answers."""
    port = free_port()
    env = {"JOBQUEUE_ACCESS_DENIED_EXIT_S": "3"}
    worker = WorkerProcess(url, consumer, "--http-port", str(port), env=env, log_dir=tmp_path)
    worker.start()
    answers: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while worker.poll() is None:
            assert time.monotonic() < deadline, f"the worker did not exit:\n{worker.output()}"
            status, _ = readyz(port)
            if status:
                answers.append(status)
            time.sleep(0.2)
        return worker.wait(), worker.output(), answers
    finally:
        worker.stop()


@pytest.fixture
def password_redis(tmp_path: Path) -> RedisServer:
    server = RedisServer(tmp_path / "redis", password="the-right-one")
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


def test_a_wrong_password_fails_readiness_and_ends_the_worker(
    password_redis: RedisServer, tmp_path: Path
) -> None:
    # given a worker started with a wrong password
    url = f"redis://:not-the-password@127.0.0.1:{password_redis.port}/0"
    # when it runs, then it is never ready, says why once, and exits with code 3
    code, output, answers = run_denied(url, tmp_path, "wrong-password")
    assert code == EXIT_ACCESS_DENIED, output
    assert output.count("refused this worker's credentials or permissions") == 1, output
    assert "Traceback" not in output, output
    assert answers, output
    assert set(answers) == {503}


def test_an_acl_denial_fails_readiness_and_ends_the_worker(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    # given a user that may do everything but read from a consumer group (PING works)
    admin = redis.Redis.from_url(own_redis.url)
    admin.acl_setuser(
        "limited", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-xreadgroup"]
    )
    admin.close()
    url = f"redis://limited:pw@127.0.0.1:{own_redis.port}/0"
    # when a worker runs as that user, then readiness fails (it answered 200 before),
    # the log says why once, and the worker exits with code 3
    code, output, answers = run_denied(url, tmp_path, "acl-limited")
    assert code == EXIT_ACCESS_DENIED, output
    assert output.count("refused this worker's credentials or permissions") == 1, output
    assert "no permissions to run the 'xreadgroup' command" in output
    assert "Traceback" not in output, output
    assert 503 in answers, output
    assert 200 not in answers[-3:], output
