"""The Redis local mode runs on: a URL it was given, or a private server it keeps up.

Order: ``--redis-url``/``REDIS_URL``, then the JobQueue's ``redis.url``, else a private
redis-server (`jobqueue.local.private_redis`) in the run's directory. A private server
that dies is restarted from its AOF on the next poll; one that was given is never
touched (its owner runs it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jobqueue.core.errors import ConfigError
from jobqueue.local.private_redis import PrivateRedis


class RedisSource:
    """Where the queue's Redis is, and the private server behind it if local mode runs one."""

    def __init__(self, url: str, private: PrivateRedis | None, on_event: Callable[[str], None]):
        self.url = url
        self.private = private
        self._on_event = on_event

    @classmethod
    def open(
        cls, given_url: str | None, directory: Path, on_event: Callable[[str], None]
    ) -> RedisSource:
        """Use ``given_url``, or start a private server in ``directory`` (ConfigError if
        redis-server is missing or does not start)."""
        if given_url is not None:
            return cls(given_url, None, on_event)
        private = PrivateRedis(directory)
        private.start()
        on_event(f"private Redis on {private.url} (pid {private.pid}, AOF in {directory})")
        return cls(private.url, private, on_event)

    def keep_up(self) -> None:
        """Restart the private server if it died (its AOF brings every job back).

        Blocks up to the server's start timeout; that happens only after a crash.
        """
        private = self.private
        if private is None or private.alive:
            return
        code = private.process.returncode if private.process is not None else None
        self._on_event(f"private Redis exited ({code}): restarting it from its AOF")
        try:
            # In the main thread, on purpose: the server's parent-death signal is tied
            # to the thread that starts it (see `processes.die_with_parent`).
            private.start()
        except ConfigError as exc:
            self._on_event(f"private Redis did not restart: {exc}")
            return
        self._on_event(f"private Redis back (pid {private.pid})")

    def close(self) -> None:
        """Stop the private server, if any (SIGTERM: it flushes its AOF first)."""
        if self.private is not None:
            self.private.stop()
            self._on_event("private Redis stopped")
