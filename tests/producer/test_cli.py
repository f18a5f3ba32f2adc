"""The client-side commands through the real ``jobqueue`` entry point, against Redis."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from click.testing import CliRunner, Result

from jobqueue.cli.main import cli
from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import dead_letter_fields, decode

KEYS = QueueKeys()


@pytest.fixture
def run(redis_url: str) -> Any:
    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env={"REDIS_URL": redis_url, **(env or {})})

    return invoke


def test_enqueue_count_writes_that_many_jobs_and_prints_json(
    run: Any, sync_redis: redis.Redis
) -> None:
    result = run(
        "enqueue", "report", '{"report_id": 3}', "--count", "3", "--priority", "8", "--json"
    )

    assert result.exit_code == 0, result.output
    printed = orjson.loads(result.output)
    entries = sync_redis.xrange(KEYS.stream)
    assert [e[0] for e in entries] == [r["streamEntryId"] for r in printed]
    jobs = [decode(entry_id, fields) for entry_id, fields in entries]
    assert {(j.type, j.priority, j.payload["report_id"]) for j in jobs} == {("report", 8, 3)}


def test_enqueue_a_large_count_goes_in_batches_and_summarises(
    run: Any, sync_redis: redis.Redis
) -> None:
    result = run("enqueue", "noop", "{}", "--count", "2500")

    assert result.exit_code == 0, result.output
    assert "enqueued 2500 jobs" in result.output
    assert sync_redis.xlen(KEYS.stream) == 2500


def test_enqueue_with_a_job_id_run_twice_enqueues_once(run: Any, sync_redis: redis.Redis) -> None:
    first = run("enqueue", "noop", "{}", "--job-id", "nightly-2026-11-30", "--json")
    again = run("enqueue", "noop", "{}", "--job-id", "nightly-2026-11-30", "--json")
    many = run("enqueue", "noop", "{}", "--job-id", "x", "--count", "2")

    assert (first.exit_code, again.exit_code) == (0, 0), first.output + again.output
    assert orjson.loads(first.output)[0]["duplicate"] is False
    assert orjson.loads(again.output)[0]["duplicate"] is True
    [(_, fields)] = sync_redis.xrange(KEYS.stream)
    assert fields["id"] == "nightly-2026-11-30"
    assert many.exit_code == 2
    assert "--job-id" in many.output


def test_enqueue_with_delay_waits_in_the_delayed_set(run: Any, sync_redis: redis.Redis) -> None:
    result = run("enqueue", "noop", "{}", "--delay", "60", "--json")

    assert result.exit_code == 0, result.output
    [printed] = orjson.loads(result.output)
    assert printed["state"] == "delayed"
    assert sync_redis.zcard(KEYS.delayed) == 1


def test_bad_input_is_a_usage_error_and_enqueues_nothing(
    run: Any, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    types = tmp_path / "types.yaml"
    types.write_text("email: {type: object, required: [to]}\n")

    not_json = run("enqueue", "email", "{to:")
    not_object = run("enqueue", "email", "[1]")
    bad_priority = run("enqueue", "email", "{}", "--priority", "11")
    bad_schema = run("enqueue", "email", "{}", env={"JOBQUEUE_JOB_TYPES_FILE": str(types)})

    for result in (not_json, not_object, bad_priority, bad_schema):
        assert result.exit_code == 2, result.output
    assert "'to' is a required property" in bad_schema.output
    assert sync_redis.xlen(KEYS.stream) == 0


def test_jobs_get_and_cancel(run: Any) -> None:
    [job] = orjson.loads(run("enqueue", "noop", "{}", "--json").output)

    shown = run("jobs", "get", job["jobId"], "--json")
    cancelled = run("jobs", "cancel", job["jobId"])
    again = run("jobs", "cancel", job["jobId"])
    unknown = run("jobs", "get", "01UNKNOWN")

    assert orjson.loads(shown.output)["state"] == "queued"
    assert (cancelled.exit_code, "cancelled" in cancelled.output) == (0, True)
    assert again.exit_code == 1
    assert "already cancelled" in again.output
    assert unknown.exit_code == 1


def test_stats_prints_a_table_or_json(run: Any) -> None:
    run("enqueue", "noop", "{}", "--count", "2")

    table = run("stats")
    data = orjson.loads(run("stats", "--json").output)

    assert table.exit_code == 0
    assert "dead letters" in table.output
    assert (data["stream"], data["length"], data["lag"]) == (KEYS.stream, 2, 2)


def test_dead_list_replay_and_delete(run: Any, sync_redis: redis.Redis) -> None:
    fields = {"id": "01JOB", "type": "noop", "payload": "{}", "attempts": "4"}
    ids = [sync_redis.xadd(KEYS.dead, dead_letter_fields(KEYS.stream, "1-1", fields, "boom"))]
    ids.append(sync_redis.xadd(KEYS.dead, dead_letter_fields(KEYS.stream, "1-2", fields, "bang")))

    listed = orjson.loads(run("dead", "list", "--json").output)
    replayed = run("dead", "replay", ids[0])
    deleted = run("dead", "delete", ids[1], "--json")
    missing = run("dead", "replay", ids[0])
    neither = run("dead", "delete")

    assert [d["id"] for d in listed["items"]] == ids
    assert (replayed.exit_code, "replayed 1" in replayed.output) == (0, True)
    assert orjson.loads(deleted.output)["done"] == {ids[1]: True}
    assert missing.exit_code == 1
    assert neither.exit_code == 2
    [(_, back)] = sync_redis.xrange(KEYS.stream)
    assert (back["id"], back["attempts"]) == ("01JOB", "0")
    assert sync_redis.xlen(KEYS.dead) == 0


def test_dead_replay_all_replays_every_page(run: Any, sync_redis: redis.Redis) -> None:
    fields = {"type": "noop", "payload": "{}"}
    for n in range(7):
        sync_redis.xadd(KEYS.dead, dead_letter_fields(KEYS.stream, f"1-{n}", fields, "x"))

    result = run("dead", "replay", "--all")

    assert result.exit_code == 0, result.output
    assert sync_redis.xlen(KEYS.stream) == 7
    assert sync_redis.xlen(KEYS.dead) == 0


def test_an_unreachable_redis_is_a_clear_error(run: Any) -> None:
    result = run("stats", "--redis-url", "redis://127.0.0.1:1/0")

    assert result.exit_code == 1
    assert "cannot reach Redis" in result.output


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("localhost:6379", "must start with redis://, rediss://, unix://"),
        ("http://localhost:6379/0", "got http://"),
        ("redis://localhost:sixthree/0", "invalid port"),
    ],
)
def test_a_malformed_redis_url_is_one_clear_line_not_a_traceback(
    run: Any, url: str, words: str
) -> None:
    result = run("stats", env={"REDIS_URL": url})

    assert result.exit_code == 1
    assert words in result.output
    assert not isinstance(result.exception, ValueError)
    assert "Traceback" not in result.output


def test_the_producer_refuses_a_malformed_redis_url_before_listening(run: Any) -> None:
    result = run("producer", "--redis-url", "redis://:s3cret@localhost:bad/0", "--port", "0")

    assert result.exit_code == 1
    assert "invalid port" in result.output
    assert "s3cret" not in result.output  # a URL may carry a password: never echoed


def test_the_producer_on_a_port_in_use_says_so_in_one_line(run: Any) -> None:
    # Given a port somebody else listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # When the producer is asked to listen there
        result = run("producer", "--host", "127.0.0.1", "--port", str(port))

    # Then it exits 1 naming the address, without a traceback
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.output
    assert not isinstance(result.exception, OSError)
