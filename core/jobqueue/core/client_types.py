"""What the client takes and returns: a new job, and the answers about existing ones.

Plain dataclasses, so the HTTP API, the CLI and users' code share them without pulling
in pydantic or aiohttp. `enqueue_arg` turns a `NewJob` into the argument of the
enqueue script (`jobqueue.core.scripts.ENQUEUE`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from jobqueue.core.status import JobState
from jobqueue.core.wire import CORE_FIELDS, MAX_PRIORITY, MIN_PRIORITY, Job

MAX_IDEMPOTENCY_KEY_CHARS = 200


class InvalidNewJob(ValueError):
    """Job number ``index`` of an enqueue cannot be accepted; ``reason`` says why."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"job {index}: {reason}")
        self.index = index
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue.

    ``delay_s`` (seconds from now) or ``run_at`` (an aware datetime) make it a delayed
    job: it waits in the delayed set and reaches the stream no earlier than that time.
    ``idempotency_key``: a repeat with the same key within the client's idempotency TTL
    enqueues nothing and answers the first job. ``extra``: more wire fields, kept as is.
    """

    type: str
    payload: Mapping[str, Any]
    priority: int = 5
    delay_s: float | None = None
    run_at: datetime | None = None
    idempotency_key: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def check(self) -> None:
        """Raise ValueError naming the first thing that makes this job unacceptable."""
        if not isinstance(self.type, str) or not self.type.strip():
            raise ValueError("'type' must be a non-empty string")
        if not isinstance(self.payload, Mapping):
            raise ValueError("'payload' must be a JSON object (a mapping)")
        if isinstance(self.priority, bool) or not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise ValueError(f"'priority' must be an integer {MIN_PRIORITY}..{MAX_PRIORITY}")
        if self.delay_s is not None and self.run_at is not None:
            raise ValueError("give 'delay_s' or 'run_at', not both")
        if self.delay_s is not None and not (math.isfinite(self.delay_s) and self.delay_s >= 0):
            raise ValueError("'delay_s' must be a finite number of seconds >= 0")
        if self.run_at is not None and self.run_at.tzinfo is None:
            raise ValueError("'run_at' must carry a timezone")
        key = self.idempotency_key
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
            raise ValueError(f"'idempotency_key' must be 1..{MAX_IDEMPOTENCY_KEY_CHARS} characters")
        clashing = sorted(CORE_FIELDS.intersection(self.extra))
        if clashing:
            raise ValueError(f"'extra' must not set wire fields {clashing}")

    def due_ms(self, now_ms: int) -> int:
        """Epoch milliseconds this job is due, or 0 when it may run now."""
        if self.delay_s is not None and self.delay_s > 0:
            return now_ms + math.ceil(self.delay_s * 1000)
        if self.run_at is not None:
            due = math.ceil(self.run_at.timestamp() * 1000)
            return due if due > now_ms else 0
        return 0


def enqueue_arg(job: NewJob, now_ms: int) -> tuple[str, bytes]:
    """The job's id and the enqueue script's argument for it, a JSON array (layout in
    `jobqueue.core.scripts`); ValueError when the job cannot be accepted."""
    job.check()
    extra = dict(job.extra)
    if job.idempotency_key is not None:
        extra["idempotency_key"] = job.idempotency_key
    wire = Job(type=job.type, payload=dict(job.payload), priority=job.priority, extra=extra)
    try:
        fields = wire.fields()
    except orjson.JSONEncodeError:
        # orjson refuses integers beyond 64 bits; the standard library writes any JSON.
        wire.payload_text = _stdlib_json(wire.payload)
        fields = wire.fields()
    due_ms = job.due_ms(now_ms)
    flat = [value for pair in fields.items() for value in pair]
    arg: list[Any] = [job.idempotency_key or "", wire.id, str(due_ms), "", wire.type]
    arg += [wire.enqueued_at, flat]
    if due_ms:
        run_at = datetime.fromtimestamp(due_ms / 1000, UTC).isoformat(timespec="milliseconds")
        arg[3] = run_at.replace("+00:00", "Z")
        arg.append(orjson.dumps(fields).decode())
    return wire.id, orjson.dumps(arg)


def queued_record(fields: Mapping[str, str]) -> dict[str, str]:
    """The status record of a job waiting in the stream, from its entry's ``fields``."""
    enqueued_at = fields.get("enqueued_at", "")
    return {
        "state": JobState.QUEUED,
        "type": fields.get("type", ""),
        "attempts": fields.get("attempts", "0"),
        "enqueued_at": enqueued_at,
        "updated_at": enqueued_at,
    }


def _stdlib_json(payload: dict[str, Any]) -> str:
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"'payload' cannot be encoded as JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The answer to an enqueue: the job's id, its stream entry id (None while delayed),
    its state, and whether it was a repeat of an idempotency key (nothing enqueued)."""

    job_id: str
    entry_id: str | None
    state: str
    duplicate: bool

    @classmethod
    def from_reply(cls, reply: Sequence[str]) -> Enqueued:
        job_id, entry_id, state, duplicate = reply
        return cls(job_id, entry_id or None, state, duplicate == "1")


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job's status record (`jobqueue.core.status`); timestamps are ISO-8601 UTC text."""

    job_id: str
    state: str
    type: str = ""
    attempts: int = 0
    enqueued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    run_at: str | None = None
    last_error: str | None = None
    entry_id: str | None = None
    cancel_requested: bool = False
    dead_entry_id: str | None = None
    """Its entry in the dead-letter stream, while the job is dead."""

    @classmethod
    def from_record(cls, job_id: str, record: Mapping[str, str]) -> JobInfo:
        def text(name: str) -> str | None:
            return record.get(name) or None

        attempts = record.get("attempts", "0")
        return cls(
            job_id=job_id,
            state=record.get("state", ""),
            type=record.get("type", ""),
            attempts=int(attempts) if attempts.isdigit() else 0,
            enqueued_at=text("enqueued_at"),
            started_at=text("started_at"),
            finished_at=text("finished_at"),
            updated_at=text("updated_at"),
            run_at=text("run_at"),
            last_error=text("last_error"),
            entry_id=text("entry_id"),
            cancel_requested=record.get("cancel_requested") == "1",
            dead_entry_id=text("dead_entry_id"),
        )

    @property
    def finished(self) -> bool:
        return self.state in (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What a cancel did. ``answer``: ``cancelled`` (it will never run),
    ``cancel_requested`` (running; its worker was asked to stop), ``not_cancellable``
    (already finished: see ``state``) or ``not_found``."""

    job_id: str
    answer: str
    state: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of the dead-letter stream (SPEC §2), by its entry id there."""

    entry_id: str
    fields: Mapping[str, str]

    @property
    def job_id(self) -> str:
        return self.fields.get("original_id", "")

    @property
    def type(self) -> str:
        return self.fields.get("type", "")

    @property
    def reason(self) -> str:
        return self.fields.get("reason", "")

    @property
    def failed_at(self) -> str:
        return self.fields.get("failed_at", "")

    @property
    def attempts(self) -> str:
        return self.fields.get("attempts", "")


@dataclass(frozen=True, slots=True)
class DeadPage:
    """One page of dead letters; ``next_after`` is the cursor of the next page, or None."""

    items: list[DeadLetter]
    next_after: str | None
