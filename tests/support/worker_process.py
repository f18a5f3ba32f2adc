"""Start and stop ``jobqueue worker`` subprocesses for tests (real processes, real signals).

    with WorkerProcess(redis_url, "w1", "--visibility-timeout-s", "2") as worker:
        ...
        worker.kill()          # SIGKILL, as the OOM killer would
    worker.output()            # what it logged, for assertion messages

The worker runs ``jobqueue.worker.testing:app`` unless ``app_ref`` says otherwise, with
its HTTP side server off unless ``--http-port`` is passed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import orjson
import pytest
import redis

from jobqueue.core.wire import new_job_id

JOBQUEUE = Path(sys.executable).with_name("jobqueue")
TESTING_APP = "jobqueue.worker.testing:app"


class WorkerProcess:
    """One ``jobqueue worker`` process with consumer name ``consumer``."""

    def __init__(
        self,
        redis_url: str,
        consumer: str,
        *args: str,
        app_ref: str = TESTING_APP,
        log_dir: Path | None = None,
        env: dict[str, str] | None = None,
        watch_url: str | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.watch_url = watch_url or redis_url
        """A plain URL of the same Redis, for `wait_ready` (a Sentinel URL is not one)."""
        self.consumer = consumer
        self.command = [str(JOBQUEUE), "worker", app_ref, "--redis-url", redis_url]
        self.command += ["--consumer", consumer]
        if "--http-port" not in args:
            self.command += ["--http-port", "0"]
        self.command += list(args)
        self.env = {**os.environ, **(env or {})}
        directory = log_dir if log_dir is not None else Path(os.environ.get("TMPDIR", "/tmp"))
        self.log_path = directory / f"worker-{consumer}-{os.getpid()}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        """Wait until the worker has joined its consumer group (its first read)."""
        client = redis.Redis.from_url(self.watch_url, decode_responses=True)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.poll() is not None:
                    raise RuntimeError(f"worker exited early:\n{self.output()}")
                stream = self._arg("--stream", "jobs:work")
                group = self._arg("--group", "workers")
                try:
                    consumers = client.xinfo_consumers(stream, group)
                except redis.ResponseError:
                    consumers = []
                if any(c["name"] == self.consumer for c in consumers):
                    return
                time.sleep(0.05)
            raise TimeoutError(f"worker {self.consumer} did not start:\n{self.output()}")
        finally:
            client.close()

    def _arg(self, flag: str, default: str) -> str:
        if flag in self.command:
            return self.command[self.command.index(flag) + 1]
        return default

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def terminate(self) -> None:
        """SIGTERM: the worker stops reading and finishes within its grace period."""
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the worker dies at once, whatever it holds."""
        if self.poll() is None:
            self.signal(signal.SIGKILL)
            self.wait()

    def wait(self, timeout_s: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.process is None:
            return None
        if self.poll() is None:
            self.terminate()
            try:
                return self.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.poll()

    def output(self, limit: int | None = 6000) -> str:
        """What it logged: the last ``limit`` characters, or all of it."""
        try:
            text = self.log_path.read_text(errors="replace")
            return text if limit is None else text[-limit:]
        except FileNotFoundError:
            return ""

    def __enter__(self) -> WorkerProcess:
        return self if self.process is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def xadd_job(client: redis.Redis, stream: str, job_type: str, payload: dict[str, object]) -> str:
    """XADD one new job as a plain producer would (SPEC §2 fields); its id."""
    job_id = new_job_id()
    fields = {"id": job_id, "type": job_type, "payload": orjson.dumps(payload).decode()}
    client.xadd(stream, {**fields, "priority": "5", "attempts": "0"})
    return job_id


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``check`` until it holds; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
