"""Settings shared by every component, and the helpers each component's settings use.

Every component keeps its own settings dataclass (``jobqueue.worker.settings`` and so
on) built with the helpers here, so there is one way to read configuration: typed
fields with their unit in the name, each with a default, one ``from_env`` constructor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from jobqueue.core.errors import ConfigError
from jobqueue.core.keys import DEFAULT_DEAD_STREAM, DEFAULT_GROUP, DEFAULT_STREAM, QueueKeys

T = TypeVar("T")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def env_value(environ: Mapping[str, str], name: str, default: T, parse: Callable[[str], T]) -> T:
    """``environ[name]`` parsed, or ``default`` when unset or empty; bad values: ConfigError."""
    text = environ.get(name, "")
    if text == "":
        return default
    try:
        return parse(text)
    except ValueError as exc:
        raise ConfigError(f"{name}={text!r} is invalid: {exc}") from None


def parse_bool(text: str) -> bool:
    """``1/true/yes/on`` and ``0/false/no/off``, any case."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Where one queue lives: the Redis server and the keys of its streams.

    Environment: ``REDIS_URL``, ``JOBQUEUE_STREAM``, ``JOBQUEUE_GROUP``,
    ``JOBQUEUE_DEAD_STREAM``, ``JOBQUEUE_STATUS_TTL_S``.
    """

    redis_url: str = DEFAULT_REDIS_URL
    """``redis://`` or ``rediss://`` URL, credentials and database included."""
    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP
    dead_stream: str = DEFAULT_DEAD_STREAM
    status_ttl_s: int = 7 * 24 * 3600
    """How long a job's status record is kept after its last change, in seconds."""

    @property
    def keys(self) -> QueueKeys:
        return QueueKeys(stream=self.stream, group=self.group, dead=self.dead_stream)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> QueueSettings:
        env = os.environ if environ is None else environ
        return cls(
            redis_url=env_value(env, "REDIS_URL", DEFAULT_REDIS_URL, str),
            stream=env_value(env, "JOBQUEUE_STREAM", DEFAULT_STREAM, str),
            group=env_value(env, "JOBQUEUE_GROUP", DEFAULT_GROUP, str),
            dead_stream=env_value(env, "JOBQUEUE_DEAD_STREAM", DEFAULT_DEAD_STREAM, str),
            status_ttl_s=env_value(env, "JOBQUEUE_STATUS_TTL_S", 7 * 24 * 3600, int),
        )
