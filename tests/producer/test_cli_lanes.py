"""The client-side commands on a queue with priority lanes (JOBQUEUE_LANES or --lanes)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis
from click.testing import CliRunner, Result

from jobqueue.cli.main import cli
from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import dead_letter_fields

KEYS = QueueKeys()
HIGH, LOW = KEYS.lane("high"), KEYS.lane("low")
LANES = "high:8-10,normal:4-7,low:1-3"


@pytest.fixture
def run(redis_url: str) -> Any:
    def invoke(*args: str) -> Result:
        env = {"REDIS_URL": redis_url, "JOBQUEUE_LANES": LANES}
        return CliRunner().invoke(cli, list(args), env=env)

    return invoke


def test_enqueue_routes_each_priority_to_its_lane(run: Any, sync_redis: redis.Redis) -> None:
    high = run("enqueue", "noop", "{}", "--priority", "9", "--json")
    normal = run("enqueue", "noop", "{}", "--json")
    low = run("enqueue", "noop", "{}", "--priority", "1", "--count", "2", "--json")

    assert (high.exit_code, normal.exit_code, low.exit_code) == (0, 0, 0), low.output
    assert [e[0] for e in sync_redis.xrange(HIGH)] == [
        orjson.loads(high.output)[0]["streamEntryId"]
    ]
    assert sync_redis.xlen(KEYS.stream) == 1
    assert [e[0] for e in sync_redis.xrange(LOW)] == [
        job["streamEntryId"] for job in orjson.loads(low.output)
    ]


def test_the_lanes_flag_overrides_the_environment(redis_url: str, sync_redis: redis.Redis) -> None:
    result = CliRunner().invoke(
        cli,
        ["enqueue", "noop", "{}", "--priority", "10", "--lanes", "urgent:10,rest:1-9"],
        env={"REDIS_URL": redis_url, "JOBQUEUE_LANES": LANES},
    )
    bad = CliRunner().invoke(cli, ["stats", "--lanes", "high:8-10"], env={"REDIS_URL": redis_url})

    assert result.exit_code == 0, result.output
    assert (sync_redis.xlen(KEYS.lane("urgent")), sync_redis.xlen(HIGH)) == (1, 0)
    assert bad.exit_code == 1
    assert "priorities 1..7 have no lane" in bad.output


def test_jobs_get_cancel_and_dead_replay_find_the_lane(run: Any, sync_redis: redis.Redis) -> None:
    [job] = orjson.loads(run("enqueue", "noop", "{}", "--priority", "10", "--json").output)
    fields = {"id": "01DEAD", "type": "noop", "payload": "{}", "priority": "1"}
    dead_id = sync_redis.xadd(KEYS.dead, dead_letter_fields(LOW, "1-1", fields, "boom"))

    shown = orjson.loads(run("jobs", "get", job["jobId"], "--json").output)
    cancelled = run("jobs", "cancel", job["jobId"])
    replayed = run("dead", "replay", dead_id)

    assert (shown["state"], shown["lane"]) == ("queued", "high")
    assert cancelled.exit_code == 0, cancelled.output
    assert sync_redis.xlen(HIGH) == 0
    assert replayed.exit_code == 0, replayed.output
    [(_, back)] = sync_redis.xrange(LOW)
    assert back["id"] == "01DEAD"


def test_stats_show_every_lane(run: Any) -> None:
    run("enqueue", "noop", "{}", "--priority", "9", "--count", "3")
    run("enqueue", "noop", "{}", "--priority", "1")

    table = run("stats")
    data = orjson.loads(run("stats", "--json").output)

    assert table.exit_code == 0
    assert "Priority lanes" in table.output
    assert HIGH in table.output
    assert data["lag"] == 4
    assert [(lane["name"], lane["lag"]) for lane in data["lanes"]] == [
        ("high", 3),
        ("normal", 0),
        ("low", 1),
    ]
