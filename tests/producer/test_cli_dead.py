"""Dead letters from the CLI as on-call uses them: whole ids, either id, a question
before deleting them all; one casing (the HTTP API's camelCase) for every ``--json``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from click.testing import CliRunner, Result

from jobqueue.cli.main import cli
from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import Job, dead_letter_fields

KEYS = QueueKeys()
JOBQUEUE = Path(sys.executable).with_name("jobqueue")


@pytest.fixture
def run(redis_url: str) -> Any:
    def invoke(*args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env={"REDIS_URL": redis_url}, input=stdin)

    return invoke


def dead_by_a_worker(sync_redis: redis.Redis, redis_url: str, count: int) -> list[str]:
    """``count`` jobs dead-lettered by a real worker (``Fatal``); their job ids."""
    jobs = [Job(type="record", payload={}) for _ in range(count)]  # no "into": Fatal
    for job in jobs:
        sync_redis.xadd(KEYS.stream, job.fields())  # type: ignore[arg-type]
    subprocess.run(
        [str(JOBQUEUE), "worker", "jobqueue.worker.testing:app", "--burst", "--http-port", "0"],
        env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=60,
        check=True,
    )
    return [job.id for job in jobs]


def test_dead_list_shows_whole_ids_on_a_narrow_terminal(run: Any, sync_redis: redis.Redis) -> None:
    fields = {"id": "01KB2Z3Y4X5W6V7U8T9S0R1Q2P", "type": "email", "payload": "{}"}
    reason = "attempts exhausted (5/5), last error: " + "SMTPServerDisconnected " * 4
    entry_id = sync_redis.xadd(KEYS.dead, dead_letter_fields(KEYS.stream, "1-1", fields, reason))

    shown = run("dead", "list")  # not a terminal: rich lays it out in 80 columns

    assert shown.exit_code == 0, shown.output
    assert entry_id in shown.output
    assert "01KB2Z3Y4X5W6V7U8T9S0R1Q2P" in shown.output


def test_a_job_id_finds_its_dead_letter_and_jobs_get_shows_it(
    run: Any, sync_redis: redis.Redis, redis_url: str
) -> None:
    first, second = dead_by_a_worker(sync_redis, redis_url, 2)
    listed = orjson.loads(run("dead", "list", "--json").output)["items"]
    by_job = {item["jobId"]: item["id"] for item in listed}

    shown = orjson.loads(run("jobs", "get", first, "--json").output)
    replayed = run("dead", "replay", first)
    deleted = run("dead", "delete", second, "--json")
    again = run("dead", "replay", first)

    assert shown["deadEntryId"] == by_job[first]
    assert (shown["state"], shown["jobId"]) == ("dead", first)
    assert replayed.exit_code == 0, replayed.output
    assert "replayed 1" in replayed.output
    assert orjson.loads(deleted.output)["done"] == {second: True}
    assert again.exit_code == 1
    assert f"no dead letter {first}" in again.output
    assert sync_redis.xlen(KEYS.dead) == 0
    after = orjson.loads(run("jobs", "get", first, "--json").output)
    assert (after["state"], after["deadEntryId"]) == ("queued", None)


def test_a_job_id_without_a_status_record_is_found_in_the_dead_letters(
    run: Any, sync_redis: redis.Redis
) -> None:
    fields = {"id": "legacy-job", "type": "noop", "payload": "{}"}
    sync_redis.xadd(KEYS.dead, dead_letter_fields(KEYS.stream, "1-1", fields, "boom"))

    replayed = run("dead", "replay", "legacy-job")

    assert replayed.exit_code == 0, replayed.output
    [(_, back)] = sync_redis.xrange(KEYS.stream)
    assert back["id"] == "legacy-job"


@pytest.mark.parametrize(("answer", "left"), [("n\n", 3), ("", 3), ("y\n", 0)])
def test_delete_all_asks_first(run: Any, sync_redis: redis.Redis, answer: str, left: int) -> None:
    for n in range(3):
        fields = {"id": f"j{n}", "type": "noop", "payload": "{}"}
        sync_redis.xadd(KEYS.dead, dead_letter_fields(KEYS.stream, f"1-{n}", fields, "x"))

    result = run("dead", "delete", "--all", stdin=answer)

    assert f"Delete all 3 dead letters of {KEYS.dead} for good?" in result.output
    assert result.exit_code == (0 if left == 0 else 1)
    assert sync_redis.xlen(KEYS.dead) == left


def test_delete_all_with_yes_does_not_ask(run: Any, sync_redis: redis.Redis) -> None:
    fields = {"id": "j", "type": "noop", "payload": "{}"}
    sync_redis.xadd(KEYS.dead, dead_letter_fields(KEYS.stream, "1-1", fields, "x"))

    result = run("dead", "delete", "--all", "--yes")

    assert result.exit_code == 0, result.output
    assert "Delete all" not in result.output
    assert sync_redis.xlen(KEYS.dead) == 0


def test_stats_names_the_consumers_and_every_json_key_is_camel_case(
    run: Any, sync_redis: redis.Redis
) -> None:
    run("enqueue", "noop", "{}", "--count", "3")
    sync_redis.xgroup_create(KEYS.stream, "workers", id="0")
    for consumer in ("pod-a", "pod-b"):
        sync_redis.xreadgroup("workers", consumer, {KEYS.stream: ">"}, count=1)

    stats = orjson.loads(run("stats", "--json").output)
    enqueued = orjson.loads(run("enqueue", "noop", "{}", "--json").output)

    [group] = stats["consumerGroups"]
    assert (group["consumers"], sorted(group["consumerNames"])) == (2, ["pod-a", "pod-b"])
    for document in (stats, group, enqueued[0]):
        assert all("_" not in key for key in document), sorted(document)
    assert {"jobId", "streamEntryId", "state", "duplicate"} <= set(enqueued[0])
