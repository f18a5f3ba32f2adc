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

from jobqueue.core.connection import check_url
from jobqueue.core.errors import ConfigError
from jobqueue.core.keys import (
    DEFAULT_GROUP,
    DEFAULT_STREAM,
    QueueKeys,
    check_stream_name,
    partition_streams,
)
from jobqueue.core.lanes import NO_LANES, Lanes, parse_lanes

T = TypeVar("T")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MAX_PARTITIONS = 256
"""More partitions than this would make every status lookup and backlog scan slow."""


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


def check_redis_url(url: str) -> str:
    """``url`` when the Redis client can use it; else ConfigError saying why.

    Checked where settings are made, so a typo is a one-line error before anything
    connects (never a traceback). The message never repeats the URL: it may hold a password.
    Which URLs are known: `jobqueue.core.connection.KINDS`.
    """
    return check_url(url)


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Where one queue lives: the Redis server and the keys of its streams.

    Environment: ``REDIS_URL``, ``JOBQUEUE_STREAM``, ``JOBQUEUE_GROUP``,
    ``JOBQUEUE_DEAD_STREAM``, ``JOBQUEUE_STATUS_TTL_S``, ``JOBQUEUE_ENQUEUE_MIN_REPLICAS``,
    ``JOBQUEUE_ENQUEUE_REPLICAS_TIMEOUT_MS``, ``JOBQUEUE_LANES``, ``JOBQUEUE_PARTITIONS``.
    """

    redis_url: str = DEFAULT_REDIS_URL
    """``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://`` or
    ``redis+cluster://`` URL, credentials and database included."""
    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP
    dead_stream: str = ""
    """Dead-letter stream; empty: ``{stream}:dead``, in the queue's Cluster slot."""
    status_ttl_s: int = 7 * 24 * 3600
    """How long a job's status record is kept after its last change, in seconds."""
    enqueue_min_replicas: int = 0
    """Replicas that must acknowledge an enqueue (``WAIT``) before it counts as
    accepted; 0 = the primary's answer is enough (`jobqueue.core.replication`)."""
    enqueue_replicas_timeout_ms: int = 1000
    """How long an enqueue waits for those replicas, in milliseconds."""
    lanes: Lanes = NO_LANES
    """Priority lanes (`jobqueue.core.lanes`), written ``high:8-10,normal:4-7,low:1-3``;
    none: one stream per partition, as before."""
    partitions: int = 1
    """Streams the queue is split into (`jobqueue.core.keys.partition_streams`); 1: the
    queue is its stream alone."""

    def __post_init__(self) -> None:
        check_redis_url(self.redis_url)
        try:
            check_stream_name(self.stream)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.enqueue_min_replicas < 0:
            raise ConfigError("JOBQUEUE_ENQUEUE_MIN_REPLICAS must be 0 or more")
        if not 1 <= self.partitions <= MAX_PARTITIONS:
            raise ConfigError(f"JOBQUEUE_PARTITIONS must be 1..{MAX_PARTITIONS}")
        if self.partitions > 1 and self.dead_stream and self._cluster:
            # One dead-letter stream is one slot: every other partition's scripts would
            # span two.
            raise ConfigError(
                "JOBQUEUE_DEAD_STREAM names one stream for every partition, which a Redis"
                " Cluster cannot serve: leave it unset (each partition keeps its own)"
            )
        if self.enqueue_replicas_timeout_ms <= 0:
            # WAIT with 0 would wait forever, holding the request.
            raise ConfigError("JOBQUEUE_ENQUEUE_REPLICAS_TIMEOUT_MS must be more than 0")

    @property
    def _cluster(self) -> bool:
        return self.redis_url.split("://")[0].endswith("+cluster")

    @property
    def keys(self) -> QueueKeys:
        """The keys of the queue's stream (of its partition 0 when partitioned)."""
        return QueueKeys(stream=self.stream, group=self.group, dead_stream=self.dead_stream)

    @property
    def partition_keys(self) -> list[QueueKeys]:
        """The keys of every partition, partition 0 (the queue's stream) first."""
        if self.partitions == 1:
            return [self.keys]
        return [
            QueueKeys(stream=stream, group=self.group, dead_stream=self.dead_stream)
            for stream in partition_streams(self.stream, self.partitions)
        ]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> QueueSettings:
        env = os.environ if environ is None else environ
        return cls(
            redis_url=env_value(env, "REDIS_URL", DEFAULT_REDIS_URL, str),
            stream=env_value(env, "JOBQUEUE_STREAM", DEFAULT_STREAM, str),
            group=env_value(env, "JOBQUEUE_GROUP", DEFAULT_GROUP, str),
            dead_stream=env_value(env, "JOBQUEUE_DEAD_STREAM", "", str),
            status_ttl_s=env_value(env, "JOBQUEUE_STATUS_TTL_S", 7 * 24 * 3600, int),
            enqueue_min_replicas=env_value(env, "JOBQUEUE_ENQUEUE_MIN_REPLICAS", 0, int),
            enqueue_replicas_timeout_ms=env_value(
                env, "JOBQUEUE_ENQUEUE_REPLICAS_TIMEOUT_MS", 1000, int
            ),
            lanes=env_value(env, "JOBQUEUE_LANES", NO_LANES, parse_lanes),
            partitions=env_value(env, "JOBQUEUE_PARTITIONS", 1, int),
        )
