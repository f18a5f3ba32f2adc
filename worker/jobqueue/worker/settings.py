"""The worker's settings: one typed dataclass, read from the environment or flags.

Every duration carries its unit in its name. ``WorkerSettings.from_env`` reads the
variables listed in docs/internals.md; the CLI overrides them with its flags.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from jobqueue.core.errors import ConfigError
from jobqueue.core.lanes import LANE_MODES, STRICT, WEIGHTED, lane_weights, parse_lane_weights
from jobqueue.core.limits import (
    TypeLimit,
    combine,
    parse_concurrency_limits,
    parse_rate_limits,
)
from jobqueue.core.partitions import parse_partition_list
from jobqueue.core.settings import QueueSettings, env_value, parse_bool

DEFAULT_HTTP_PORT = 8081
MAX_RECLAIM_INTERVAL_S = 1.0
"""Longest pause between reclaim sweeps, seconds: bounds how late past its visibility
timeout a dead worker's entry is taken over."""


def default_consumer(environ: Mapping[str, str]) -> str:
    """``POD_NAME`` when set (a restarted pod then recovers its own entries), else host-pid."""
    return environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How one worker process runs; defaults suit a pod with a 30 s termination grace."""

    queue: QueueSettings = field(default_factory=QueueSettings)
    consumer: str = "worker"
    """Consumer name in the group; stable across restarts of the same pod."""
    concurrency: int = 64
    """Most jobs delivered to this worker and not yet acknowledged, at any time."""
    visibility_timeout_s: float = 30.0
    """An entry idle this long in another consumer's pending list is reclaimed, seconds."""
    grace_period_s: float = 25.0
    """On SIGTERM, how long in-flight jobs may still run before the worker exits, seconds."""
    max_deliveries: int = 5
    """A job delivered more often than this (it keeps killing workers) is dead-lettered."""
    job_timeout_s: float = 300.0
    """Default per-job timeout in seconds; a handler may set its own."""
    max_attempts: int = 20
    """Default attempts per job, the first one included; a handler may set its own. With
    the default backoff a failing job is retried for about 55 minutes (at least ~30 in
    99 cases of 100) before it is dead-lettered: longer than ordinary incidents of the
    services handlers call. Redis's own incidents use up no attempts at all."""
    backoff_base_s: float = 1.0
    """Default ceiling of the first retry delay, seconds (doubles per attempt, jittered)."""
    backoff_cap_s: float = 600.0
    """Default largest retry delay, seconds."""
    http_port: int = DEFAULT_HTTP_PORT
    """Port of /healthz, /readyz and /metrics; 0 turns the side server off."""
    http_host: str = "0.0.0.0"
    block_ms: int = 1000
    """Longest blocking XREADGROUP, milliseconds; bounds how long a stop request waits."""
    promote_interval_s: float = 0.5
    """How often due retries and delayed jobs are moved back to the stream, seconds."""
    trim_interval_s: float = 30.0
    """How often the stream is trimmed below what every group has finished, seconds."""
    burst: bool = False
    """Exit 0 once the stream, the delayed set and in-flight work are all empty."""
    access_denied_exit_s: float = 60.0
    """How long Redis may refuse this worker's credentials or permissions (a wrong
    password, an ACL denial) before the worker exits non-zero, seconds: long enough to
    ride out a password rotation, short enough that the pod's status shows it."""
    max_loop_crashes: int = 5
    result_max_bytes: int = 64 * 1024
    """Largest handler result stored with a job's status, bytes of JSON text; a bigger
    one is dropped (the job still succeeds and its record says why)."""
    """Read-loop crashes in a row (no good read between) before the process gives up."""
    limits: tuple[TypeLimit, ...] = ()
    """Rate and concurrency limits by job type, shared by every worker of the queue
    (`jobqueue.worker.limiter`); empty: no limiter, no cost."""
    partitions: tuple[int, ...] = ()
    """The queue's partitions this worker consumes (numbers 0..JOBQUEUE_PARTITIONS-1);
    empty: every one (`jobqueue.worker.partitioned`)."""
    limit_lease_ttl_s: float = 0.0
    """A concurrency lease not refreshed for this long (its worker died) is free again,
    seconds; the heartbeat refreshes live ones. 0: the visibility timeout (three
    heartbeats), so a dead worker's leases come back when its jobs are reclaimed."""
    lane_mode: str = STRICT
    """How the queue's priority lanes are served: ``strict`` (a higher lane always
    first) or ``weighted`` (in proportion to `lane_weights`, `jobqueue.worker.lanes`)."""
    lane_weights: tuple[tuple[str, int], ...] = ()
    """Weighted mode: (lane name, weight) pairs; a lane not named weighs its place from
    the lowest (1 for the lowest lane, 2 for the next, ...)."""

    def __post_init__(self) -> None:
        positive = {
            "concurrency": self.concurrency,
            "visibility_timeout_s": self.visibility_timeout_s,
            "max_deliveries": self.max_deliveries,
            "job_timeout_s": self.job_timeout_s,
            "max_attempts": self.max_attempts,
            "block_ms": self.block_ms,
            "promote_interval_s": self.promote_interval_s,
            "trim_interval_s": self.trim_interval_s,
            "max_loop_crashes": self.max_loop_crashes,
            "access_denied_exit_s": self.access_denied_exit_s,
            "result_max_bytes": self.result_max_bytes,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.limit_lease_ttl_s < 0:
            raise ConfigError(
                f"limit_lease_ttl_s must not be negative, got {self.limit_lease_ttl_s}"
            )
        outside = [p for p in self.partitions if not 0 <= p < self.queue.partitions]
        if outside:
            raise ConfigError(
                f"partitions {outside} are not among the queue's {self.queue.partitions}"
                " (JOBQUEUE_WORKER_PARTITIONS numbers them from 0)"
            )
        if self.grace_period_s < 0:
            raise ConfigError(f"grace_period_s must not be negative, got {self.grace_period_s}")
        if not 0 <= self.http_port <= 65535:
            raise ConfigError(f"http_port must be 0..65535, got {self.http_port}")
        if not self.consumer:
            raise ConfigError("consumer name must not be empty")
        if self.lane_mode not in LANE_MODES:
            raise ConfigError(f"lane_mode must be one of {', '.join(LANE_MODES)}")
        if self.lane_weights and self.lane_mode != WEIGHTED:
            raise ConfigError("lane weights are for lane_mode 'weighted'")
        try:
            lane_weights(self.queue.lanes, self.lane_weights)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.limit_lease_ttl_s and self.limit_lease_ttl_s < 2 * self.heartbeat_interval_s:
            raise ConfigError(
                f"limit_lease_ttl_s ({self.limit_lease_ttl_s:g}) must be at least two"
                f" heartbeats ({2 * self.heartbeat_interval_s:g} s): visibility_timeout_s / 1.5"
            )

    @property
    def weights(self) -> list[int] | None:
        """Each lane's weight, highest lane first, in weighted mode; None in strict mode
        or without lanes."""
        if self.lane_mode != WEIGHTED or not self.queue.lanes:
            return None
        return lane_weights(self.queue.lanes, self.lane_weights)

    @property
    def heartbeat_interval_s(self) -> float:
        """How often in-flight claims are refreshed and cancellations checked, seconds."""
        return self.visibility_timeout_s / 3

    @property
    def lease_ttl_s(self) -> float:
        """`limit_lease_ttl_s`, or the visibility timeout when it is 0, seconds."""
        return self.limit_lease_ttl_s or self.visibility_timeout_s

    @property
    def reclaim_interval_s(self) -> float:
        """How often idle entries of other consumers are looked for, seconds: a dead
        worker's entries are taken over at most this long after their visibility
        timeout ran out (the sweep itself is one script call per page)."""
        return min(self.visibility_timeout_s / 4, MAX_RECLAIM_INTERVAL_S)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        """Settings from ``REDIS_URL``, ``JOBQUEUE_*`` and ``POD_NAME``; defaults elsewhere."""
        env = os.environ if environ is None else environ
        base = cls()
        return cls(
            queue=QueueSettings.from_env(env),
            consumer=default_consumer(env),
            concurrency=env_value(env, "JOBQUEUE_CONCURRENCY", base.concurrency, int),
            visibility_timeout_s=env_value(
                env, "JOBQUEUE_VISIBILITY_TIMEOUT_S", base.visibility_timeout_s, float
            ),
            grace_period_s=env_value(env, "JOBQUEUE_GRACE_PERIOD_S", base.grace_period_s, float),
            max_deliveries=env_value(env, "JOBQUEUE_MAX_DELIVERIES", base.max_deliveries, int),
            job_timeout_s=env_value(env, "JOBQUEUE_JOB_TIMEOUT_S", base.job_timeout_s, float),
            max_attempts=env_value(env, "JOBQUEUE_MAX_ATTEMPTS", base.max_attempts, int),
            backoff_base_s=env_value(env, "JOBQUEUE_BACKOFF_BASE_S", base.backoff_base_s, float),
            backoff_cap_s=env_value(env, "JOBQUEUE_BACKOFF_CAP_S", base.backoff_cap_s, float),
            http_port=env_value(env, "JOBQUEUE_WORKER_HTTP_PORT", base.http_port, int),
            result_max_bytes=env_value(
                env, "JOBQUEUE_RESULT_MAX_BYTES", base.result_max_bytes, int
            ),
            block_ms=env_value(env, "JOBQUEUE_BLOCK_MS", base.block_ms, int),
            trim_interval_s=env_value(env, "JOBQUEUE_TRIM_INTERVAL_S", base.trim_interval_s, float),
            burst=env_value(env, "JOBQUEUE_BURST", False, parse_bool),
            access_denied_exit_s=env_value(
                env, "JOBQUEUE_ACCESS_DENIED_EXIT_S", base.access_denied_exit_s, float
            ),
            limits=combine(
                parse_rate_limits(env.get("JOBQUEUE_RATE_LIMITS", "")),
                parse_concurrency_limits(env.get("JOBQUEUE_CONCURRENCY_LIMITS", "")),
            ),
            partitions=env_value(env, "JOBQUEUE_WORKER_PARTITIONS", (), parse_partition_list),
            limit_lease_ttl_s=env_value(
                env, "JOBQUEUE_LIMIT_LEASE_TTL_S", base.limit_lease_ttl_s, float
            ),
            lane_mode=env_value(env, "JOBQUEUE_LANE_MODE", base.lane_mode, _lane_mode),
            lane_weights=env_value(env, "JOBQUEUE_LANE_WEIGHTS", (), parse_lane_weights),
        )


def _lane_mode(text: str) -> str:
    mode = text.strip().lower()
    if mode not in LANE_MODES:
        raise ValueError(f"expected {' or '.join(LANE_MODES)}")
    return mode
