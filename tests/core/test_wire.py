"""The wire format: what a producer writes is what a worker reads, extras kept."""

from __future__ import annotations

import time

import pytest
from ulid import ULID

from jobqueue.core.errors import MalformedJob
from jobqueue.core.wire import Job, dead_letter_fields, decode, new_job_id, replay_fields


def test_fields_round_trip_with_extras() -> None:
    job = Job(type="email", payload={"to": "a@b.c"}, extra={"trace_id": "t-1"})
    decoded = decode("1-0", job.fields())
    assert (decoded.id, decoded.type, decoded.payload) == (job.id, "email", {"to": "a@b.c"})
    assert decoded.extra == {"trace_id": "t-1"}
    assert decoded.fields() == job.fields()


def test_minimal_entry_from_redis_cli_gets_defaults() -> None:
    job = decode("5-1", {"type": "noop", "payload": "{}"})
    assert (job.id, job.priority, job.attempts) == ("5-1", 5, 0)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"payload": "{}"}, "missing field 'type'"),
        ({"type": "x"}, "missing field 'payload'"),
        ({"type": "x", "payload": "[1]"}, "must be a JSON object"),
        ({"type": "x", "payload": "{"}, "not valid JSON"),
        ({"type": "x", "payload": "{}", "priority": "high"}, "'priority' must be an integer"),
        ({"type": "x", "payload": "{}", "priority": "11"}, "'priority' must be 1..10"),
        ({"type": "x", "payload": "{}", "attempts": "-1"}, "must not be negative"),
        # bytes that are not UTF-8 arrive as lone surrogates (surrogateescape)
        ({"type": "x\udcff", "payload": "{}"}, "'type' is not valid UTF-8"),
        ({"type": "x", "payload": "{}", "id": "j\udcff"}, "'id' is not valid UTF-8"),
        ({"type": "x", "payload": "{}", "trace": "\udcc3("}, "'trace' is not valid UTF-8"),
    ],
)
def test_malformed_entries_say_why(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(MalformedJob, match=reason):
        decode("1-0", fields)


def test_text_beyond_ascii_that_is_utf8_is_fine() -> None:
    job = decode("1-0", {"type": "résumé", "payload": '{"a": "ü"}', "id": "jöb", "t": "✓"})
    assert (job.type, job.id, job.payload, job.extra) == ("résumé", "jöb", {"a": "ü"}, {"t": "✓"})


def test_dead_letter_keeps_extras_and_replay_resets_attempts() -> None:
    job = Job(type="email", payload={}, attempts=4, extra={"trace_id": "t"})
    dead = dead_letter_fields("jobs:work", "7-0", job.fields(), "boom", attempts=5)
    assert dead["original_id"] == job.id
    assert (dead["reason"], dead["attempts"], dead["trace_id"]) == ("boom", "5", "t")
    assert dead["source_stream"] == "jobs:work"
    replayed = decode("8-0", replay_fields(dead))
    assert (replayed.id, replayed.attempts, replayed.extra) == (job.id, 0, {"trace_id": "t"})


def test_new_job_ids_are_ulids_of_now_that_sort_in_the_order_they_were_made() -> None:
    before_ms = time.time_ns() // 1_000_000
    ids = [new_job_id() for _ in range(5000)]  # many share a millisecond
    after_ms = time.time_ns() // 1_000_000

    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for job_id in (ids[0], ids[-1]):
        assert len(job_id) == 26
        assert set(job_id) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
        assert str(ULID.from_str(job_id)) == job_id
        assert before_ms <= ULID.from_str(job_id).milliseconds <= after_ms
