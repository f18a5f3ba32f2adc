"""``jobqueue dev`` on bad input and on an unreachable Redis: clear words, no traceback."""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

import redis
from click.testing import CliRunner
from local.dev_process import DevProcess
from support.redis_server import free_port

from jobqueue.cli.main import cli


def test_a_missing_queue_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["dev", "-f", str(tmp_path / "nope.yaml"), "--no-live"])

    assert result.exit_code == 2
    assert "cannot read" in result.output
    assert "nope.yaml" in result.output
    assert "Traceback" not in result.output


def test_an_invalid_queue_file_names_the_bad_field(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(
        "apiVersion: jobqueue.dev/v1alpha1\nkind: JobQueue\nmetadata: {name: q}\n"
        "spec:\n  worker: {image: x, app: 'not an app ref'}\n"
    )

    result = CliRunner().invoke(cli, ["dev", "-f", str(path), "--no-live"])

    assert result.exit_code == 2
    assert "spec.worker.app" in result.output


def test_an_unreachable_redis_is_reported_each_poll_and_nothing_is_started(start_dev) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"  # nobody listens there

    dev: DevProcess = start_dev("--port", "0", "--duration-s", "0.5", redis_url=url)

    assert dev.wait_exit() == 0, dev.output
    assert "error=" in dev.output
    assert f"connecting to 127.0.0.1:{port}" in dev.output
    assert dev.worker_pids() == {}
    assert "Traceback" not in dev.output


def test_a_queue_key_of_the_wrong_type_is_reported_not_fatal(
    redis_url: str, sync_redis: redis.Redis, start_dev
) -> None:
    sync_redis.set("jobs:work", "not a stream")

    dev: DevProcess = start_dev("--port", "0", "--duration-s", "0.5", redis_url=redis_url)

    assert dev.wait_exit() == 0, dev.output
    assert "WRONGTYPE" in dev.output
    assert "Traceback" not in dev.output
    assert sync_redis.get("jobs:work") == "not a stream"


def test_without_redis_url_or_redis_server_it_says_what_to_install(tmp_path: Path) -> None:
    venv_bin = str(Path(sys.executable).parent)
    env = {"PATH": venv_bin, "HOME": str(tmp_path)}  # no redis-server on this PATH

    dev = DevProcess(["--port", "0", "--duration-s", "1"], env)

    assert dev.wait_exit() == 1, dev.output
    assert "redis-server is not installed" in dev.output
    assert "REDIS_URL" in dev.output
    assert "Traceback" not in dev.output


def test_a_malformed_redis_url_is_a_usage_error_before_anything_starts() -> None:
    result = CliRunner().invoke(cli, ["dev", "--redis-url", "localhost:6379", "--no-live"])

    assert result.exit_code == 2
    assert "must start with redis://, rediss://, unix://" in result.output
    assert "Traceback" not in result.output


def test_a_producer_port_in_use_is_named_in_one_line_and_the_rest_keeps_running(
    redis_url: str, start_dev
) -> None:
    with socket.socket() as taken:
        # Given a port somebody else listens on
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # When dev is asked to serve the producer API there
        dev: DevProcess = start_dev("--port", str(port), "--duration-s", "60", redis_url=redis_url)

        # Then it says why the producer stopped, in words, and does not loop restarting it
        dev.wait_for_line(
            rf"producer exited \(exit 1\): Error: cannot listen on 127\.0\.0\.1:{port}: "
            "Address already in use"
        )
        dev.wait_for_line("producer not restarted")
    dev.process.send_signal(signal.SIGINT)
    assert dev.wait_exit() == 0, dev.output
    assert "Traceback" not in dev.output


SECRET_DOC = "apiVersion: v1\nkind: Secret\nmetadata: {name: redis}\nstringData: {url: x}\n"
QUEUE_DOC = (
    "apiVersion: jobqueue.dev/v1alpha1\nkind: JobQueue\nmetadata: {name: %s}\n"
    "spec: {worker: {image: x, app: 'jobqueue.worker.testing:app'}}\n"
)


def test_a_file_with_other_objects_beside_the_jobqueue_runs_that_jobqueue(
    tmp_path: Path, redis_url: str, start_dev
) -> None:
    # Given the YAML one would kubectl apply: a Secret, then the JobQueue
    path = tmp_path / "q.yaml"
    path.write_text(SECRET_DOC + "---\n" + QUEUE_DOC % "emails")

    dev: DevProcess = start_dev(
        "-f", str(path), "--port", "0", "--duration-s", "0.5", redis_url=redis_url
    )

    assert dev.wait_exit() == 0, dev.output
    assert "ran for" in dev.output


def test_a_file_with_two_jobqueues_is_a_usage_error_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(QUEUE_DOC % "a" + "---\n" + QUEUE_DOC % "b")

    result = CliRunner().invoke(cli, ["dev", "-f", str(path), "--no-live"])

    assert result.exit_code == 2
    assert "the file holds 2 JobQueues (a, b); give one" in result.output
