"""Hostile entries in a queue with priority lanes and partitions: raw XADDs into a lane
stream of a partition with fields that break SPEC §2, delayed jobs whose stored text or
priority is garbage, a retry of a job whose priority text is odd. Each is dead-lettered
with a reason (or run, when it is a job after all); none crashes the worker, stalls its
lane or is lost in the delayed set."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.lanes import parse_lanes
from jobqueue.core.settings import QueueSettings
from jobqueue.core.wire import new_job_id, utc_now_iso
from jobqueue.worker.partitioned import worker_for
from jobqueue.worker.testing import app as testing_app

from .conftest import settings_for

LANES = parse_lanes("high:8-10,normal:4-7,low:1-3")
DONE = "test:done"


def _queue(redis_url: str) -> QueueSettings:
    return QueueSettings(redis_url=redis_url, partitions=2, lanes=LANES)


def _good(priority: str = "9", **extra: str) -> dict[str, str]:
    return {
        "id": new_job_id(),
        "type": "record",
        "payload": orjson.dumps({"into": DONE}).decode(),
        "priority": priority,
        "enqueued_at": utc_now_iso(),
        "attempts": "0",
        **extra,
    }


BAD_ENTRIES: dict[str, dict[str, str | bytes]] = {
    "no type": {k: v for k, v in _good().items() if k != "type"},
    "payload not JSON": {**_good(), "payload": "{nope"},
    "payload a list": {**_good(), "payload": "[1]"},
    "priority abc": _good("abc"),
    "priority 99": _good("99"),
    "priority 0": _good("0"),
    "priority 9.0": _good("9.0"),
    "priority bytes": {**_good(), "priority": b"\xff\xfe"},
    "type bytes": {**_good(), "type": b"rec\xc3ord"},
    "id bytes": {**_good(), "id": b"\xed\xa0\x80"},
    "huge payload": {
        **_good(),
        "payload": orjson.dumps({"x": "y" * 2_000_000}).decode(),
        "type": "missing-handler",
    },
    "attempts -1": {**_good(), "attempts": "-1"},
    "attempts abc": {**_good(), "attempts": "abc"},
    "type empty": {**_good(), "type": ""},
    "payload empty": {**_good(), "payload": ""},
    "priority huge": _good("9" * 5000),
    "only an id": {"id": new_job_id()},
}


async def _run_burst(redis_url: str) -> int:
    settings = settings_for(redis_url, queue=_queue(redis_url), concurrency=4, burst=True,
                            max_attempts=2)  # fmt: skip
    return await asyncio.wait_for(worker_for(testing_app, settings).run(handle_signals=False), 60)


async def _dead(redis: AsyncRedis, queue: QueueSettings) -> list[dict[str, str]]:
    return [f for keys in queue.partition_keys for _, f in await redis.xrange(keys.dead)]


async def test_malformed_entries_in_a_lane_of_a_partition_are_dead_lettered_with_a_reason(
    redis_url: str, redis_client: AsyncRedis
) -> None:
    queue = _queue(redis_url)
    part = queue.partition_keys[1]
    high, low = LANES.stream(part, LANES.lanes[0]), LANES.stream(part, LANES.lanes[2])
    bad_ids = []
    for fields in BAD_ENTRIES.values():
        bad_ids.append(await redis_client.xadd(high, fields))  # type: ignore[arg-type]
    # good jobs behind them, one with a huge extra field (extra fields are kept, not refused)
    good = [_good("9"), {**_good("9"), "z" * 100_000: "v"}, _good("2")]
    for job in good:
        await redis_client.xadd(high if job["priority"] == "9" else low, job)  # type: ignore[arg-type]

    assert await _run_burst(redis_url) == 0

    assert set(await redis_client.hgetall(DONE)) == {job["id"] for job in good}
    dead = await _dead(redis_client, queue)
    assert sorted(d["original_entry_id"] for d in dead) == sorted(bad_ids), dead
    for letter in dead:
        assert letter["reason"], letter
        assert letter["source_stream"] == high
    for stream in (high, low):
        assert (await redis_client.xpending(stream, queue.group))["pending"] == 0


DELAYED_TEXTS = {
    "not JSON": "{nope",
    "a string": '"hello"',
    "an empty object": "{}",
    "an empty list": "[]",
    "a list": "[1, 2, 3]",
    "priority abc": orjson.dumps(_good("abc")).decode(),
    "priority 99": orjson.dumps(_good("99")).decode(),
    "priority a number": orjson.dumps({**_good(), "priority": 9}).decode(),
    "priority null": orjson.dumps({**_good(), "priority": None}).decode(),
    "payload an object": orjson.dumps({**_good(), "payload": {"into": DONE}}).decode(),
    # 1e400 reads as inf in Redis's Lua, whose cjson cannot write it back
    "payload with inf": '{"type": "record", "payload": {"into": "test:done", "x": 1e400}}',
    "nested deep": '{"type": "record", "payload": ' + "[" * 900 + "]" * 900 + "}",
}


@pytest.mark.parametrize("text", DELAYED_TEXTS.values(), ids=DELAYED_TEXTS.keys())
async def test_a_garbage_delayed_job_is_promoted_and_then_run_or_dead_lettered(
    redis_url: str, redis_client: AsyncRedis, text: str
) -> None:
    queue = _queue(redis_url)
    part = queue.partition_keys[1]
    job_id = new_job_id()
    await redis_client.zadd(part.delayed, {job_id: 0})
    await redis_client.hset(part.delayed_jobs, job_id, text)
    after = _good("2")
    await redis_client.xadd(LANES.stream(part, LANES.lanes[2]), after)  # type: ignore[arg-type]

    assert await _run_burst(redis_url) == 0

    assert await redis_client.zcard(part.delayed) == 0
    assert await redis_client.hlen(part.delayed_jobs) == 0
    done = set(await redis_client.hgetall(DONE))
    dead = await _dead(redis_client, queue)
    assert after["id"] in done
    # the job ran once (it was a job after all) or is dead-lettered once, with a reason
    assert len(done) + len(dead) == 2, (done, dead)
    assert all(letter["reason"] for letter in dead)


ODD_PRIORITIES = ["+9", " 9 ", "09", "\u0669", "\uff19", "9\n"]
"""Texts Python's int() reads as 9 (so the entry decodes), and some Lua's tonumber not."""


@pytest.mark.parametrize("priority", ODD_PRIORITIES, ids=repr)
async def test_a_retry_of_a_job_with_an_odd_priority_text_runs_again_in_its_lane(
    redis_url: str, redis_client: AsyncRedis, priority: str
) -> None:
    queue = _queue(redis_url)
    part = queue.partition_keys[1]
    high = LANES.stream(part, LANES.lanes[0])
    job = {
        **_good(priority),
        "type": "fail",
        "payload": orjson.dumps({"times": 1, "into": DONE}).decode(),
    }
    await redis_client.xadd(high, job)  # type: ignore[arg-type]

    assert await _run_burst(redis_url) == 0

    assert set(await redis_client.hgetall(DONE)) == {job["id"]}
    assert await _dead(redis_client, queue) == []
    assert await redis_client.zcard(part.delayed) == 0
    streams = {
        s: await redis_client.xlen(s) for keys in queue.partition_keys for s in LANES.streams(keys)
    }
    assert streams[high] == 2, streams  # the retry came back to the high lane
