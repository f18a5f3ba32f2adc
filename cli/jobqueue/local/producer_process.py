"""The producer API as a child process of local mode: ``jobqueue producer``.

It is started once, on the queue's streams, and restarted if it dies after having run;
one that dies right at its start (port in use, bad flags) is left stopped and its log
line shown, since restarting it would only loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from jobqueue.local.processes import Child, describe_exit, spawn
from jobqueue.local.queue import LocalQueue

RESTART_AFTER_S = 5.0
"""A producer that dies sooner than this after its start is not restarted."""


class ProducerProcess:
    """The producer child of one local-mode run (none when ``port`` is 0)."""

    def __init__(
        self,
        command: list[str],
        queue: LocalQueue,
        *,
        host: str,
        port: int,
        log_dir: Path,
        on_event: Callable[[str], None],
        env: Mapping[str, str] | None = None,
    ) -> None:
        spec = queue.spec
        self._argv = [
            *command, "producer",
            "--stream", spec.stream,
            *(["--dead-stream", queue.dead_stream_flag] if queue.dead_stream_flag else []),
            *queue.partition_flags(),
            "--host", host,
            "--port", str(port),
        ]  # fmt: skip
        self.url = f"http://{host}:{port}" if port else "(off)"
        self._enabled = port != 0
        self._log_dir = log_dir
        self._on_event = on_event
        self._env = dict(env or {})
        self.child: Child | None = None

    def start(self) -> None:
        if not self._enabled:
            return
        self.child = spawn("producer", self._argv, self._log_dir, env=self._env)
        self._on_event(f"producer API on {self.url} (pid {self.child.pid})")

    def check(self) -> None:
        """Notice an exit and restart the producer unless it died right at its start."""
        child = self.child
        if child is None or child.alive:
            return
        code = child.returncode
        assert code is not None
        tail = child.log_tail().splitlines()[-1:]
        self._on_event(f"producer exited ({describe_exit(code)}): {tail[0] if tail else ''}")
        self.child = None
        if time.monotonic() - child.started_at_s < RESTART_AFTER_S:
            self._on_event(f"producer not restarted: see {child.log_path}")
            return
        self.start()
