"""The wire format of a job (SPEC §2): flat string fields of one stream entry.

=============== ===================================================== ===========
field           meaning                                               when absent
=============== ===================================================== ===========
``id``          job id, a ULID                                        stream entry id
``type``        handler name                                          malformed
``payload``     JSON object, as text                                  malformed
``priority``    integer 1..10, as text                                ``5``
``enqueued_at`` ISO-8601 UTC timestamp                                empty
``attempts``    attempts already made, integer as text                ``0``
=============== ===================================================== ===========

Any other field (``run_at``, ``idempotency_key``, ``trace_id``, ...) is kept in
``Job.extra`` and written back unchanged on retry and dead-lettering, so entries from a
plain ``redis-cli XADD`` or a Node.js producer round-trip without loss.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from jobqueue.core.errors import MalformedJob

DEFAULT_PRIORITY = 5
MIN_PRIORITY, MAX_PRIORITY = 1, 10
CORE_FIELDS = frozenset({"id", "type", "payload", "priority", "enqueued_at", "attempts"})


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
"""Every 10 bits as two characters: a ULID's 130 bits (2 leading zeros) are 13 pairs."""
_SHIFTS = tuple(range(120, -1, -10))
_RANDOM_BITS = 80
_last = [0, 0]
"""The last id's milliseconds and random part, for monotonic ids within a millisecond."""
_last_lock = threading.Lock()


def new_job_id() -> str:
    """A fresh ULID: 26 characters, sortable by creation time.

    Monotonic as python-ulid's ``ULID()`` is (an id made in the same millisecond as the
    one before is that one plus 1), at a third of its cost (its encoding goes character
    by character: ~4 us of every ``POST /jobs``)."""
    ms = time.time_ns() // 1_000_000
    with _last_lock:
        last_ms, last_random = _last
        if ms <= last_ms:
            ms, random = last_ms, last_random + 1
            if random >> _RANDOM_BITS:  # 2**80 ids in one millisecond: take the next one
                ms, random = ms + 1, int.from_bytes(os.urandom(10))
        else:
            random = int.from_bytes(os.urandom(10))
        _last[0], _last[1] = ms, random
    value = ms << _RANDOM_BITS | random
    return "".join([_PAIRS[value >> shift & 1023] for shift in _SHIFTS])


def utc_now_iso() -> str:
    """The current time as ISO-8601 UTC with milliseconds, e.g. ``2026-01-02T03:04:05.678Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Job:
    """One job as read from, or about to be written to, a stream."""

    type: str
    payload: dict[str, Any]
    id: str = field(default_factory=new_job_id)
    priority: int = DEFAULT_PRIORITY
    enqueued_at: str = field(default_factory=utc_now_iso)
    attempts: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    payload_text: str | None = None
    """The payload exactly as read, so a retry writes back the producer's bytes."""

    def fields(self) -> dict[str, str]:
        """The stream entry fields of this job (what ``XADD`` writes)."""
        payload = self.payload_text
        if payload is None:
            payload = orjson.dumps(self.payload).decode()
        return {
            **self.extra,
            "id": self.id,
            "type": self.type,
            "payload": payload,
            "priority": str(self.priority),
            "enqueued_at": self.enqueued_at,
            "attempts": str(self.attempts),
        }


def decode(entry_id: str, fields: Mapping[str, str]) -> Job:
    """Parse one stream entry; raise `MalformedJob` with the reason if it breaks SPEC §2."""
    # The worker calls this once per job: one lookup per field, and no dict comprehension
    # for the usual entry that carries only core fields.
    get = fields.get
    job_type = get("type")
    if not job_type:
        raise MalformedJob("missing field 'type'")
    payload_text = get("payload")
    if payload_text is None:
        raise MalformedJob("missing field 'payload'")
    try:
        payload = orjson.loads(payload_text)
    except orjson.JSONDecodeError as exc:
        raise MalformedJob(f"'payload' is not valid JSON: {exc}") from None
    if type(payload) is not dict:
        raise MalformedJob(f"'payload' must be a JSON object, not {type(payload).__name__}")
    priority = _int_field("priority", get("priority"), DEFAULT_PRIORITY)
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise MalformedJob(f"'priority' must be {MIN_PRIORITY}..{MAX_PRIORITY}, got {priority}")
    attempts = _int_field("attempts", get("attempts"), 0)
    if attempts < 0:
        raise MalformedJob(f"'attempts' must not be negative, got {attempts}")
    job_id, enqueued_at = get("id") or entry_id, get("enqueued_at", "")
    # Text that is not UTF-8 arrives as lone surrogates (see jobqueue.core.connection);
    # it could not be written back as JSON or a status record. isascii() is O(1).
    if not (job_id.isascii() and job_type.isascii() and enqueued_at.isascii()):
        for name, text in (("id", job_id), ("type", job_type), ("enqueued_at", enqueued_at)):
            _check_utf8(name, text)
    extra = {} if fields.keys() <= CORE_FIELDS else _extra_fields(fields)
    return Job(
        id=job_id,
        type=job_type,
        payload=payload,
        payload_text=payload_text,
        priority=priority,
        enqueued_at=enqueued_at,
        attempts=attempts,
        extra=extra,
    )


def _int_field(name: str, text: str | None, default: int) -> int:
    if not text:  # absent or empty
        return default
    try:
        return int(text)
    except ValueError:
        raise MalformedJob(f"'{name}' must be an integer, got {text!r}") from None


def _extra_fields(fields: Mapping[str, str]) -> dict[str, str]:
    extra = {k: v for k, v in fields.items() if k not in CORE_FIELDS}
    for name, text in extra.items():
        _check_utf8("field name", name)
        _check_utf8(name, text)
    return extra


def shown(text: str) -> str:
    """``text`` as read from Redis (bytes that are not UTF-8 arrive as lone surrogates,
    `jobqueue.core.connection`), safe to print or put in JSON: each such byte as ``\\xNN``.
    For display only: a dead letter replayed keeps its bytes."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


def _check_utf8(name: str, text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise MalformedJob(f"{name!r} is not valid UTF-8") from None


def dead_letter_fields(
    source_stream: str,
    entry_id: str,
    fields: Mapping[str, str],
    reason: str,
    attempts: int | None = None,
    traceback: str | None = None,
) -> dict[str, str]:
    """The fields of a dead-letter entry (SPEC §2) for the stream entry ``fields``.

    Works on raw fields, so a malformed entry is dead-lettered with whatever it had.
    ``attempts`` overrides the entry's own count (the attempts actually made).
    """
    dead = {k: v for k, v in fields.items() if k not in ("id", "attempts")}
    dead.update(
        original_id=fields.get("id") or entry_id,
        original_entry_id=entry_id,
        source_stream=source_stream,
        type=fields.get("type", ""),
        payload=fields.get("payload", ""),
        attempts=str(attempts if attempts is not None else fields.get("attempts", "0")),
        failed_at=utc_now_iso(),
        reason=reason,
    )
    if traceback:
        dead["traceback"] = traceback
    return dead


def replay_fields(dead: Mapping[str, str]) -> dict[str, str]:
    """The stream fields that re-enqueue a dead letter: its original job, attempts reset."""
    dropped = {
        "original_id",
        "original_entry_id",
        "source_stream",
        "failed_at",
        "reason",
        "traceback",
    }
    fields = {k: v for k, v in dead.items() if k not in dropped}
    fields["id"] = dead.get("original_id") or new_job_id()
    fields["attempts"] = "0"
    return fields
