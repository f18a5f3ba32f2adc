"""The HTTP API's request and response bodies (pydantic v2); OpenAPI is built from them.

Requests reject unknown fields (``extra="forbid"``) and coerce nothing (``strict``), so a
typo or a string where a number belongs is a 422 naming the field. Response field names
follow SPEC §4 (``jobId``, ``streamEntryId``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)
from pydantic.config import JsonDict

from jobqueue.core.client_types import JOB_ID_PATTERN

MAX_DELAY_S = 366 * 24 * 3600
"""Longest delay accepted, in seconds (a year and a day)."""
MAX_BATCH_JOBS = 10_000
"""Hard cap on a batch in the schema; the configured ``max_batch_jobs`` is checked too."""


def _whole_number(value: Any) -> Any:
    """JSON Schema counts ``7.0`` as an integer, so the API does too (strings stay wrong)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Priority = Annotated[int, BeforeValidator(_whole_number)]

_LEAP_SECOND = re.compile(r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:)60(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def _rfc3339(value: Any) -> Any:
    """RFC 3339 time, as OpenAPI's ``date-time`` promises: a leap second (``:60``) is
    the instant after ``:59`` (Python's datetime has no second 60); a time Python cannot
    hold in UTC is refused with a reason instead of failing later."""
    if not isinstance(value, str):
        return value  # strict validation refuses it, naming the field
    leap = _LEAP_SECOND.fullmatch(value)
    try:
        if leap is None:
            parsed = _AWARE.validate_strings(value, strict=True)
        else:
            base, fraction, zone = leap.groups()
            parsed = _AWARE.validate_strings(f"{base}59{fraction or ''}{zone}", strict=True)
            parsed += timedelta(seconds=1)
        parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range (years 1..9999 in UTC)") from None
    return parsed


_AWARE: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)
RunAt = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


_NOT_BOTH_SCHEDULES: JsonDict = {
    "not": {
        "required": ["delay_seconds", "run_at"],
        "properties": {"delay_seconds": {"type": "number"}, "run_at": {"type": "string"}},
    }
}


class JobIn(BaseModel):
    """One job to enqueue (``POST /jobs``)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_NOT_BOTH_SCHEDULES)

    type: str = Field(min_length=1, max_length=200, description="Handler name.")
    payload: dict[str, Any] = Field(description="The job's arguments.")
    priority: Priority = Field(5, ge=1, le=10)
    delay_seconds: float | None = Field(
        None, ge=0, le=MAX_DELAY_S, description="Run no earlier than this many seconds from now."
    )
    run_at: RunAt | None = Field(
        None,
        description="Run no earlier than this time (RFC 3339, years 0001..9999 in UTC; a leap"
        " second counts as the next second).",
    )
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="A repeat with this key within its TTL enqueues nothing.",
    )
    partition_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="A partitioned queue puts every job of this key in one partition, in"
        " enqueue order (and its idempotency key there: repeats carry the same one).",
    )
    job_id: str | None = Field(
        None,
        pattern=f"^{JOB_ID_PATTERN}$",
        description="The job's id, chosen by the caller (default: a new ULID). A repeat"
        " with an id the queue knows enqueues nothing: retrying with it is always safe.",
    )

    @model_validator(mode="after")
    def _one_schedule(self) -> Self:
        if self.delay_seconds is not None and self.run_at is not None:
            raise ValueError("give delay_seconds or run_at, not both")
        return self


class BatchIn(BaseModel):
    """Many jobs in one request (``POST /jobs/batch``): all are valid or none is enqueued."""

    model_config = ConfigDict(extra="forbid", strict=True)

    jobs: list[JobIn] = Field(min_length=1, max_length=MAX_BATCH_JOBS)


class Accepted(BaseModel):
    """A job accepted; ``streamEntryId`` is null while the job is delayed. ``duplicate``:
    its idempotency key was seen before, this is the first job and nothing was enqueued."""

    status: Literal["accepted"] = "accepted"
    jobId: str
    streamEntryId: str | None
    state: str
    duplicate: bool = False


class BatchAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    jobs: list[Accepted]


class Issue(BaseModel):
    """One problem: ``field`` is a dotted path into the body, e.g. ``payload.to``."""

    field: str
    message: str


class InvalidJob(BaseModel):
    error: Literal["Invalid job"] = "Invalid job"
    issues: list[Issue]


class ErrorBody(BaseModel):
    """Any other error: a short reason, and a detail when one helps. An enqueue that got
    no 202 says what became of its jobs: ``outcome`` is ``not_enqueued`` or ``unknown``
    (it may have been enqueued: ``GET /jobs/{jobId}`` tells, and retrying with the same
    ``job_id`` or idempotency key never enqueues it twice), with ``jobId`` (one job) or
    ``jobIds`` (a batch)."""

    error: str
    detail: str | None = None
    outcome: Literal["not_enqueued", "unknown"] | None = None
    jobId: str | None = None
    jobIds: list[str] | None = None


class JobStatusOut(BaseModel):
    """A job's status record; timestamps are ISO-8601 UTC."""

    jobId: str
    state: str
    type: str
    attempts: int
    enqueuedAt: str | None
    startedAt: str | None
    finishedAt: str | None
    updatedAt: str | None
    runAt: str | None
    lastError: str | None
    streamEntryId: str | None
    cancelRequested: bool
    deadEntryId: str | None = None
    """Its entry in the dead-letter stream, while the job is dead."""
    result: Any = None
    """What the handler returned (any JSON value), once succeeded; null when it returned
    nothing or the value was not stored (``resultError`` says why)."""
    resultError: str | None = None
    """Why a returned value was not stored: larger than ``JOBQUEUE_RESULT_MAX_BYTES``
    or not JSON-serialisable. The job still succeeded."""
    lane: str | None = None
    """The priority lane whose stream holds the job's entry (``streamEntryId``), when
    the queue has lanes and it is not the queue's own stream (the default lane)."""


class CancelOut(BaseModel):
    """``cancelled``: it will never run; ``cancel_requested``: it is running and its
    worker was asked to stop cooperatively."""

    jobId: str
    result: Literal["cancelled", "cancel_requested"]
    state: str


class GroupOut(BaseModel):
    name: str
    consumers: int
    consumerNames: list[str]
    pending: int
    lastDeliveredId: str
    entriesRead: int | None
    lag: int
    lagSource: str


class PartitionOut(BaseModel):
    """One partition of a partitioned queue (its own stream, in its own slot)."""

    partition: int
    stream: str
    length: int
    lag: int
    pending: int
    delayed: int
    deadLetters: int


class LaneOut(BaseModel):
    """One priority lane's stream and the queue's group on it (counts in jobs)."""

    name: str
    stream: str
    length: int
    lag: int
    lagSource: str
    pending: int
    oldestWaitingId: str | None


class StatsOut(BaseModel):
    """SPEC §4 stats plus lag, pending, delayed and dead-letter counts (in jobs); a
    partitioned queue's summed over its partitions, each listed in ``partitions``."""

    stream: str
    group: str
    length: int
    entriesAdded: int
    lag: int
    lagSource: str
    pending: int
    delayed: int
    deadLetters: int
    consumerGroups: list[GroupOut]
    """The groups of the queue's own stream (the default lane's, with lanes)."""
    partitions: list[PartitionOut] = []
    lanes: list[LaneOut] = []
    """Each priority lane, highest first (empty without lanes); the counts above are
    their sums."""


class DeadLetterOut(BaseModel):
    """A dead letter; ``id`` is its entry id in the dead-letter stream."""

    id: str
    jobId: str
    type: str
    reason: str
    failedAt: str
    attempts: str
    fields: dict[str, str]


class DeadPageOut(BaseModel):
    """Oldest first; pass ``next`` as ``after`` for the next page (null: no more)."""

    items: list[DeadLetterOut]
    next: str | None


class ReplayOut(BaseModel):
    status: Literal["replayed"] = "replayed"
    jobId: str
    streamEntryId: str


class HealthOut(BaseModel):
    status: str


class DeletedOut(BaseModel):
    status: Literal["deleted"] = "deleted"
    id: str
