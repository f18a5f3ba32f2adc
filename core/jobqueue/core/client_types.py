"""What the client takes and returns: a new job, and the answers about existing ones.

Plain dataclasses, so the HTTP API, the CLI and users' code share them without pulling
in pydantic or aiohttp. `enqueue_arg` turns a `NewJob` into the argument of the
enqueue script (`jobqueue.core.scripts.ENQUEUE`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import RedisError

from jobqueue.core.status import JobState
from jobqueue.core.wire import CORE_FIELDS, MAX_PRIORITY, MIN_PRIORITY, Job, new_job_id

MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_EXTRA_FIELDS = 1000
"""Most extra fields a job may carry: the enqueue script hands a job's fields to XADD
in one Lua ``unpack``, which fails past ~8,000 values, and it would fail there after
writing the jobs before it in the call."""
JOB_ID_PATTERN = "[0-9A-Za-z_-]{1,64}"
"""What a client-chosen job id may look like (a ULID fits; so does a UUID)."""
_JOB_ID = re.compile(JOB_ID_PATTERN)
INT64_MIN, UINT64_MAX = -(2**63), 2**64 - 1
"""The integers a worker decodes exactly (orjson reads any other as a float)."""


class InvalidNewJob(ValueError):
    """Job number ``index`` of an enqueue cannot be accepted; ``reason`` says why."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"job {index}: {reason}")
        self.index = index
        self.reason = reason


class AmbiguousDeadLetter(ValueError):
    """Dead letters of several partitions have the entry id ``entry_id`` (each
    partition's stream numbers its own entries); the job's id says which one."""

    def __init__(self, entry_id: str, job_ids: Sequence[str]) -> None:
        super().__init__(
            f"dead letters of jobs {', '.join(job_ids)} in different partitions have the"
            f" entry id {entry_id}: name the job too"
        )
        self.entry_id = entry_id
        self.job_ids = list(job_ids)


class PartlyEnqueued(RedisError):
    """A batch over several partitions of a Redis Cluster queue: the jobs ``enqueued``
    were written, the others met ``cause`` (and may or may not have been). A Redis
    error, so every caller that handles one answers "outcome unknown"; sending every
    job again with its ``job_id`` is safe."""

    def __init__(self, enqueued: Sequence[str], cause: BaseException) -> None:
        super().__init__(
            f"{len(enqueued)} jobs enqueued, the partitions of the others failed: "
            f"{type(cause).__name__}: {cause}"
        )
        self.enqueued = list(enqueued)
        self.cause = cause


class EnqueueExpired(Exception):
    """The jobs ``job_ids`` were not enqueued: their deadline (``not_after_ms``) had
    passed by Redis's clock when the enqueue reached it."""

    def __init__(self, job_ids: Sequence[str]) -> None:
        super().__init__(f"not enqueued, deadline passed: {', '.join(job_ids)}")
        self.job_ids = list(job_ids)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue.

    ``delay_s`` (seconds from now) or ``run_at`` (an aware datetime) make it a delayed
    job: it waits in the delayed set and reaches the stream no earlier than that time.
    ``idempotency_key``: a repeat with the same key within the client's idempotency TTL
    enqueues nothing and answers the first job. ``job_id``: the job's id, chosen by the
    caller (default: a fresh ULID); a repeat with an id whose status record still exists
    enqueues nothing and answers that job, which makes retrying an enqueue whose outcome
    is unknown safe. ``extra``: more wire fields, kept as is. ``partition_key``: in a
    partitioned queue, jobs with the same key go to the same partition, so they are
    delivered in enqueue order (`jobqueue.core.partitions`); it also decides the
    partition of an idempotency key, so repeats must carry the same one.
    """

    type: str
    payload: Mapping[str, Any]
    priority: int = 5
    delay_s: float | None = None
    run_at: datetime | None = None
    idempotency_key: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    job_id: str | None = None
    partition_key: str | None = None

    def check(self) -> None:
        """Raise ValueError naming the first thing that makes this job unacceptable."""
        if not isinstance(self.type, str) or not self.type.strip():
            raise ValueError("'type' must be a non-empty string")
        if not isinstance(self.payload, Mapping):
            raise ValueError("'payload' must be a JSON object (a mapping)")
        # Only an int: 9.0 passed the range check, then went to the default lane's stream
        # as "9.0", which the worker dead-lettered (int() refuses it); "5" and None
        # failed later with a TypeError.
        priority = self.priority
        if (
            not isinstance(priority, int)
            or isinstance(priority, bool)
            or not MIN_PRIORITY <= priority <= MAX_PRIORITY
        ):
            raise ValueError(f"'priority' must be an integer {MIN_PRIORITY}..{MAX_PRIORITY}")
        if self.delay_s is not None and self.run_at is not None:
            raise ValueError("give 'delay_s' or 'run_at', not both")
        if self.delay_s is not None and not (math.isfinite(self.delay_s) and self.delay_s >= 0):
            raise ValueError("'delay_s' must be a finite number of seconds >= 0")
        if self.run_at is not None and self.run_at.tzinfo is None:
            raise ValueError("'run_at' must carry a timezone")
        _check_key("idempotency_key", self.idempotency_key)
        _check_key("partition_key", self.partition_key)
        if self.job_id is not None and (
            not isinstance(self.job_id, str) or not _JOB_ID.fullmatch(self.job_id)
        ):
            raise ValueError(f"'job_id' must match {JOB_ID_PATTERN}")
        clashing = sorted(CORE_FIELDS.intersection(self.extra))
        if clashing:
            raise ValueError(f"'extra' must not set wire fields {clashing}")
        if len(self.extra) > MAX_EXTRA_FIELDS:
            raise ValueError(f"'extra' must hold at most {MAX_EXTRA_FIELDS} fields")

    def due_ms(self, now_ms: int) -> int:
        """Epoch milliseconds this job is due, or 0 when it may run now."""
        if self.delay_s is not None and self.delay_s > 0:
            return now_ms + math.ceil(self.delay_s * 1000)
        if self.run_at is not None:
            due = math.ceil(self.run_at.timestamp() * 1000)
            return due if due > now_ms else 0
        return 0


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # lone surrogates, e.g. undecodable bytes of a header
        return False
    return True


def enqueue_arg(job: NewJob, now_ms: int, stream: int = 1) -> tuple[str, list[str]]:
    """The job's id and the enqueue script's arguments for it (layout in
    `jobqueue.core.scripts`), ``stream`` the index (1-based) of its ready stream among
    the script's; ValueError when the job cannot be accepted.

    Whatever goes wrong with one job (a value that cannot be encoded, a date out of
    range) is a ValueError about that job, so a batch can answer it alone."""
    try:
        return _enqueue_arg(job, now_ms, stream)
    except ValueError:
        raise
    except Exception as exc:  # e.g. TypeError/OverflowError from a value of a foreign type
        raise ValueError(f"cannot be encoded: {type(exc).__name__}: {exc}") from None


def _check_key(name: str, key: object) -> None:
    """An idempotency or partition key: None, or 1..200 characters of UTF-8 text."""
    if key is None:
        return
    if not isinstance(key, str):
        raise ValueError(f"'{name}' must be a string")
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise ValueError(f"'{name}' must be 1..{MAX_IDEMPOTENCY_KEY_CHARS} characters")
    if not _is_utf8(key):
        raise ValueError(f"'{name}' must be text that encodes as UTF-8")


def _enqueue_arg(job: NewJob, now_ms: int, stream: int) -> tuple[str, list[str]]:
    job.check()
    extra = dict(job.extra)
    if job.idempotency_key is not None:
        extra["idempotency_key"] = job.idempotency_key
    if job.partition_key is not None:
        # Kept on the job so a replay from a shared dead-letter stream finds its partition.
        extra["partition_key"] = job.partition_key
    wire = Job(
        type=job.type,
        payload=dict(job.payload),
        priority=job.priority,
        extra=extra,
        id=job.job_id or new_job_id(),
        enqueued_at=_iso_at(now_ms),
    )
    try:
        fields = wire.fields()
    except orjson.JSONEncodeError as exc:
        raise ValueError(_unencodable_payload(wire.payload, exc)) from None
    due_ms = job.due_ms(now_ms)
    args = [wire.id, str(stream), str(2 * len(fields))]
    args += [value for pair in fields.items() for value in pair]
    if due_ms or job.idempotency_key is not None:
        meta: list[Any] = [job.idempotency_key or "", str(due_ms), "", wire.type]
        meta += [wire.enqueued_at, stream]
        if due_ms:
            run_at = datetime.fromtimestamp(due_ms / 1000, UTC).isoformat(timespec="milliseconds")
            meta[2] = run_at.replace("+00:00", "Z")
            meta.append(orjson.dumps(fields).decode())
        args[1] = orjson.dumps(meta).decode()
    return wire.id, args


_last_iso: tuple[int, str] = (0, "")


def _iso_at(epoch_ms: int) -> str:
    """``epoch_ms`` as ISO-8601 UTC with milliseconds (`utc_now_iso`'s format). The jobs
    of one call share their ``now_ms``, so the last one is kept: formatting a time costs
    ~1.2 us, a job's enqueue work ~4 us besides."""
    global _last_iso
    last_ms, text = _last_iso
    if epoch_ms != last_ms:
        text = datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")
        text = text.replace("+00:00", "Z")
        _last_iso = (epoch_ms, text)
    return text


def _unencodable_payload(payload: Any, exc: Exception) -> str:
    """Why ``payload`` cannot be written: a too-wide integer gets its path, since the
    standard library could write it but no worker would read it back exactly."""
    wide = _wide_int_path(payload, "payload")
    if wide is not None:
        return (
            f"'{wide}' is an integer beyond 64 bits; workers read JSON integers exactly "
            f"only within {INT64_MIN}..{UINT64_MAX}: send it as a string"
        )
    return f"'payload' cannot be encoded as JSON: {exc}"


def _wide_int_path(value: Any, path: str, depth: int = 0) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return path if not INT64_MIN <= value <= UINT64_MAX else None
    if depth > 256:  # orjson refuses deeper nesting anyway
        return None
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _wide_int_path(item, f"{path}.{key}", depth + 1)
        if found is not None:
            return found
    return None


EXPIRED = "expired"
"""The state of a job the enqueue script did not write, past ``not_after_ms``."""


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The answer to an enqueue: the job's id, its stream entry id (None while delayed),
    its state, and whether it was a repeat of an idempotency key (nothing enqueued)."""

    job_id: str
    entry_id: str | None
    state: str
    duplicate: bool

    @classmethod
    def from_answer(cls, job_id: str, answer: str) -> Enqueued:
        """The enqueue script's answer for the job ``job_id`` (`jobqueue.core.scripts`)."""
        if answer == "d":
            return cls(job_id, None, "delayed", False)
        if answer == "x":
            return cls(job_id, None, EXPIRED, False)
        if answer[:1] == "=":  # a duplicate: the caller reads the first job's record
            return cls(answer[1:], None, "", True)
        return cls(job_id, answer, "queued", False)


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
    result: Any = None
    """What the handler returned (decoded JSON), once succeeded; None when it returned
    None or the value was not stored (then ``result_error`` says why)."""
    result_error: str | None = None
    """Why a returned value was not stored: too large, or not JSON-serialisable."""
    lane: str | None = None
    """The priority lane whose stream holds the job's entry, when known and not the
    queue's own stream (the default lane)."""

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
            result=_decoded(record.get("result")),
            result_error=text("result_error"),
            lane=text("lane"),
        )

    @property
    def finished(self) -> bool:
        return self.state in (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)


def _decoded(text: str | None) -> Any:
    # The worker stored orjson's output; a record edited by hand is shown as its text.
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


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
