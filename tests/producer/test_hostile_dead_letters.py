"""Dead letters of hostile entries, read back: a worker dead-letters a malformed entry
with the bytes it had (UTF-8 or not), and every way to read or act on it (GET /dead,
GET /jobs/{id}, replay, delete, ``jobqueue dead list``) answers without a 5xx or a
traceback, showing bytes that are not UTF-8 as ``\\xNN``."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from click.testing import CliRunner
from producer.http_api import Api, StartApi
from redis.asyncio import Redis as AsyncRedis

from jobqueue.cli.main import cli
from jobqueue.core.lanes import parse_lanes
from jobqueue.core.partitions import partition_of
from jobqueue.core.settings import QueueSettings
from jobqueue.core.wire import new_job_id, utc_now_iso
from jobqueue.worker.partitioned import worker_for
from jobqueue.worker.settings import WorkerSettings
from jobqueue.worker.testing import app as testing_app

LANES_TEXT = "high:8-10,normal:4-7,low:1-3"
LANES = parse_lanes(LANES_TEXT)
QUEUE = QueueSettings(status_ttl_s=3600, partitions=3, lanes=LANES)


@pytest.fixture
async def api(start_api: StartApi) -> Api:
    return await start_api(queue=QUEUE)


def _entry(odd: dict[str | bytes, str | bytes]) -> dict[str | bytes, str | bytes]:
    return {
        "id": new_job_id(),
        "type": "noop",
        "payload": "{}",
        "priority": "9",
        "enqueued_at": utc_now_iso(),
        "attempts": "0",
        **odd,
    }


ODD: dict[str, dict[str | bytes, str | bytes]] = {
    "type": {"type": b"no\xffop"},
    "priority": {"priority": b"\xff"},
    "payload": {"payload": b'{"a": "\xc3"}'},
    "extra field": {b"x\xfe": b"\xed\xa0\x80"},
}


async def test_dead_letters_with_bytes_that_are_not_utf8_read_as_json(
    api: Api, redis_client: AsyncRedis, redis_url: str
) -> None:
    part = QUEUE.partition_keys[2]
    high = LANES.stream(part, LANES.lanes[0])
    ids = {}
    for name, odd in ODD.items():
        entry = _entry(odd)
        ids[name] = entry["id"]
        await redis_client.xadd(high, entry)  # type: ignore[arg-type]
    queue = QueueSettings(redis_url=redis_url, partitions=3, lanes=LANES)
    settings = WorkerSettings(queue=queue, http_port=0, block_ms=100, burst=True)
    assert (
        await asyncio.wait_for(worker_for(testing_app, settings).run(handle_signals=False), 60) == 0
    )

    status, page = await api.call("GET", "/dead")

    assert status == 200, page
    letters = {item["jobId"]: item for item in page["items"]}
    assert set(letters) == set(ids.values())
    assert letters[ids["type"]]["type"] == "no\\xffop"
    assert letters[ids["priority"]]["fields"]["priority"] == "\\xff"
    assert letters[ids["extra field"]]["fields"]["x\\xfe"] == "\\xed\\xa0\\x80"
    for job_id in ids.values():
        status, record = await api.call("GET", f"/jobs/{job_id}")
        assert status == 200, record
        assert record["state"] == "dead"
    result = await asyncio.to_thread(  # the CLI runs its own event loop
        CliRunner().invoke,
        cli,
        ["dead", "list", "--json"],
        env={"REDIS_URL": redis_url, "JOBQUEUE_LANES": LANES_TEXT,
             "JOBQUEUE_PARTITIONS": "3"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {item["jobId"] for item in orjson.loads(result.output)["items"]} == set(ids.values())
    for item in page["items"]:
        replay = f"/dead/{item['id']}/replay?jobId={item['jobId']}"
        status, body = await api.call("POST", replay)
        assert status == 200, body


ODD_LETTERS: dict[str, dict[str | bytes, str | bytes]] = {
    "priority superscript two": {"priority": "\u00b2"},  # isdigit(), but int() refuses it
    "priority abc": {"priority": "abc"},
    "priority 99": {"priority": "99"},
    "priority bytes": {"priority": b"\xff"},
    "original id bytes": {"original_id": b"\xff"},
    "original id empty": {"original_id": ""},
    "original id huge": {"original_id": "a" * 100_000},
    "field name bytes": {b"\xff": b"\xfe"},
    "partition key bytes": {"partition_key": b"\xff"},
    "source stream bytes": {"source_stream": b"\xff"},
}


@pytest.mark.parametrize("odd", ODD_LETTERS.values(), ids=ODD_LETTERS.keys())
async def test_an_odd_hand_written_dead_letter_is_listed_replayed_and_deleted_without_a_5xx(
    api: Api, redis_client: AsyncRedis, odd: dict[str | bytes, str | bytes]
) -> None:
    part = QUEUE.partition_keys[1]
    letter = {"original_id": new_job_id(), "type": "noop", "payload": "{}", "priority": "9",
              "reason": "x", "failed_at": utc_now_iso(), "attempts": "1",
              "source_stream": "gone", **odd}  # fmt: skip
    first = await redis_client.xadd(part.dead, letter)  # type: ignore[arg-type]
    second = await redis_client.xadd(part.dead, letter)  # type: ignore[arg-type]

    listed, page = await api.call("GET", "/dead")
    replayed, body = await api.call("POST", f"/dead/{first}/replay")
    deleted, _ = await api.call("DELETE", f"/dead/{second}")

    assert (listed, replayed, deleted) == (200, 200, 200), (page, body)
    assert len(page["items"]) == 2
    # back in one ready stream: its lane's when its priority reads as one, else the
    # queue's own stream (the default lane), where a worker dead-letters what is malformed
    streams = [s for keys in QUEUE.partition_keys for s in LANES.streams(keys)]
    holding = [s for s in streams if await redis_client.xlen(s)]
    assert len(holding) == 1
    assert await redis_client.xlen(part.dead) == 0


ODD_RECORDS: dict[str, dict[str | bytes, str | bytes]] = {
    "attempts abc": {"attempts": "abc"},
    "attempts huge": {"attempts": "9" * 30},
    "result not JSON": {"result": "{nope"},
    "result bytes": {"result": b"\xff"},
    "enqueued at bytes": {"enqueued_at": b"\xff"},
    "lane bytes": {"lane": b"\xff"},
    "state bytes": {"state": b"\xff"},
    "result error bytes": {"result_error": b"\xff"},
    "type empty": {"type": ""},
}


@pytest.mark.parametrize("odd", ODD_RECORDS.values(), ids=ODD_RECORDS.keys())
async def test_a_status_record_with_odd_values_is_read_and_cancelled_without_a_5xx(
    api: Api, redis_client: AsyncRedis, odd: dict[str | bytes, str | bytes]
) -> None:
    job_id = new_job_id()
    status_key = QUEUE.partition_keys[partition_of(job_id, 3)].status(job_id)
    record = {"state": "queued", "type": "noop", "attempts": "0", **odd}
    await redis_client.hset(status_key, mapping=record)  # type: ignore[arg-type]

    read, body = await api.call("GET", f"/jobs/{job_id}")
    waited, _ = await api.call("GET", f"/jobs/{job_id}?wait=0.05")
    cancelled, _ = await api.call("DELETE", f"/jobs/{job_id}")

    assert (read, waited) == (200, 200), body
    assert cancelled in (200, 409)
    if odd.get("state") == b"\xff":
        assert body["state"] == "\\xff"
