"""Settings of ``jobqueue dev``: where Redis is, where the producer listens, what to show."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jobqueue.core.logs import LogSettings
from jobqueue.core.settings import check_redis_url, env_value, parse_bool

DEFAULT_PRODUCER_PORT = 8080


def _optional_path(text: str) -> Path | None:
    return Path(text).expanduser()


@dataclass(frozen=True, slots=True)
class DevSettings:
    """Local mode's own settings (the queue's come from the JobQueue YAML).

    Environment: ``REDIS_URL``, ``JOBQUEUE_PRODUCER_HOST``, ``JOBQUEUE_PRODUCER_PORT``,
    ``JOBQUEUE_DEV_DATA_DIR``, ``JOBQUEUE_DEV_WORKER_METRICS``.
    """

    redis_url: str | None = None
    """Redis to use; None: the JobQueue's ``redis.url``, else a private redis-server."""
    producer_host: str = "127.0.0.1"
    """Interface the producer API binds; local mode keeps it on loopback by default."""
    producer_port: int = DEFAULT_PRODUCER_PORT
    """Port of the producer API; 0 runs no producer."""
    data_dir: Path | None = None
    """Directory for the private Redis's data and the process logs; None: a temporary
    directory removed on exit (keep one to keep queued jobs across runs)."""
    worker_metrics: bool = True
    """Give each worker its side-server on a free port and read its outcome counters."""
    demo: bool = False
    """Enqueue bursts of demo jobs (for the built-in demo queue)."""
    live: bool = True
    """Rich live view; False prints one ``key=value`` line per poll instead."""
    duration_s: float | None = None
    """Stop after this many seconds; None: run until Ctrl-C."""
    exit_when_idle: bool = False
    """Stop once jobs have run and the queue is idle at its minimum replicas."""
    logs: LogSettings = field(default_factory=LogSettings)
    """How local mode and the producer and workers it starts log."""

    def __post_init__(self) -> None:
        if self.redis_url is not None:
            check_redis_url(self.redis_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DevSettings:
        env = os.environ if environ is None else environ
        return cls(
            redis_url=env_value(env, "REDIS_URL", None, str),
            producer_host=env_value(env, "JOBQUEUE_PRODUCER_HOST", "127.0.0.1", str),
            producer_port=env_value(env, "JOBQUEUE_PRODUCER_PORT", DEFAULT_PRODUCER_PORT, int),
            data_dir=env_value(env, "JOBQUEUE_DEV_DATA_DIR", None, _optional_path),
            worker_metrics=env_value(env, "JOBQUEUE_DEV_WORKER_METRICS", True, parse_bool),
            logs=LogSettings.from_env(env),
        )
