"""The producer's settings: where to listen, who may call, what jobs to accept.

Environment (flags of ``jobqueue producer`` win over it): the queue's variables of
`jobqueue.core.settings.QueueSettings` plus ``JOBQUEUE_PRODUCER_HOST``,
``JOBQUEUE_PRODUCER_PORT``, ``JOBQUEUE_AUTH_TOKENS`` (comma separated),
``JOBQUEUE_AUTH_TOKENS_FILE`` (a mounted Secret: tokens separated by newlines or commas),
``JOBQUEUE_JOB_TYPES_FILE``, ``JOBQUEUE_MAX_BODY_BYTES``, ``JOBQUEUE_MAX_BATCH_JOBS``,
``JOBQUEUE_IDEMPOTENCY_TTL_S``, ``JOBQUEUE_SHUTDOWN_TIMEOUT_S``,
``JOBQUEUE_PRODUCER_ACCESS_LOG``, ``JOBQUEUE_REQUEST_DEADLINE_S``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jobqueue.core.errors import ConfigError
from jobqueue.core.settings import QueueSettings, env_value, parse_bool


@dataclass(frozen=True, slots=True)
class ProducerSettings:
    """Everything ``jobqueue producer`` needs; each field has a default."""

    queue: QueueSettings = field(default_factory=QueueSettings)
    host: str = "0.0.0.0"
    port: int = 8080
    auth_tokens: tuple[str, ...] = ()
    """Bearer tokens accepted (besides those of ``auth_tokens_file``)."""
    auth_tokens_file: str | None = None
    """A file of more tokens, re-read when it changes. No tokens at all: auth is off."""
    job_types_file: str | None = None
    """YAML/JSON file of accepted job types and their payload JSON Schemas; None = demo types."""
    max_body_bytes: int = 1024 * 1024
    """Largest request body accepted, in bytes; larger ones get 413."""
    max_batch_jobs: int = 1000
    """Most jobs in one ``POST /jobs/batch``."""
    idempotency_ttl_s: int = 24 * 3600
    """How long an idempotency key remembers its first job, in seconds."""
    shutdown_timeout_s: float = 30.0
    """How long SIGTERM waits for in-flight requests, in seconds."""
    access_log: bool = False
    """Log one line per request (logger ``aiohttp.access``, INFO)."""
    request_deadline_s: float = 5.0
    """Longest a request waits for Redis, in seconds; then it answers 503 (with the job
    id and "outcome unknown" when an enqueue may have happened)."""
    max_wait_s: float = 30.0
    """Longest long poll (``GET /jobs/{id}?wait=S``), in seconds; a longer ``S`` is cut
    to it. Its request's deadline is the wait plus ``request_deadline_s``."""

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_tokens) or self.auth_tokens_file is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProducerSettings:
        env = os.environ if environ is None else environ
        tokens = split_tokens(env_value(env, "JOBQUEUE_AUTH_TOKENS", "", str))
        tokens_file = env_value(env, "JOBQUEUE_AUTH_TOKENS_FILE", None, str)
        if tokens_file is not None:
            read_tokens_file(tokens_file)  # unreadable or empty: fail at start, not later
        return cls(
            queue=QueueSettings.from_env(env),
            host=env_value(env, "JOBQUEUE_PRODUCER_HOST", "0.0.0.0", str),
            port=env_value(env, "JOBQUEUE_PRODUCER_PORT", 8080, int),
            auth_tokens=tokens,
            auth_tokens_file=tokens_file,
            job_types_file=env_value(env, "JOBQUEUE_JOB_TYPES_FILE", None, str),
            max_body_bytes=env_value(env, "JOBQUEUE_MAX_BODY_BYTES", 1024 * 1024, int),
            max_batch_jobs=env_value(env, "JOBQUEUE_MAX_BATCH_JOBS", 1000, int),
            idempotency_ttl_s=env_value(env, "JOBQUEUE_IDEMPOTENCY_TTL_S", 24 * 3600, int),
            shutdown_timeout_s=env_value(env, "JOBQUEUE_SHUTDOWN_TIMEOUT_S", 30.0, float),
            access_log=env_value(env, "JOBQUEUE_PRODUCER_ACCESS_LOG", False, parse_bool),
            request_deadline_s=env_value(env, "JOBQUEUE_REQUEST_DEADLINE_S", 5.0, _positive),
            max_wait_s=env_value(env, "JOBQUEUE_MAX_WAIT_S", 30.0, _positive),
        )


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def split_tokens(text: str) -> tuple[str, ...]:
    """Tokens separated by commas or newlines, blanks dropped."""
    return tuple(t.strip() for t in text.replace("\n", ",").split(",") if t.strip())


def read_tokens_file(path: str) -> tuple[str, ...]:
    """The tokens in ``path``; ConfigError when it cannot be read or holds none."""
    try:
        tokens = split_tokens(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"JOBQUEUE_AUTH_TOKENS_FILE={path!r} cannot be read: {exc}") from None
    if not tokens:
        raise ConfigError(f"JOBQUEUE_AUTH_TOKENS_FILE={path!r} holds no token")
    return tokens
