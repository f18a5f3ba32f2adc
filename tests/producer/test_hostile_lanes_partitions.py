"""Hostile input against a producer with priority lanes and partitions both on: odd
partition keys, priority edge values, ``?jobId=`` of any bytes, batches mixing
partitions with one bad item. Each gets a clear 4xx or is served, never a 5xx, and every
accepted job sits in exactly one stream: the one of its lane in its partition."""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest
from producer.http_api import Api, StartApi, post_bytes, raw_request
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.lanes import parse_lanes
from jobqueue.core.partitions import partition_for
from jobqueue.core.settings import QueueSettings

LANES = parse_lanes("high:8-10,normal:4-7,low:1-3")
QUEUE = QueueSettings(status_ttl_s=3600, partitions=3, lanes=LANES)
PARTS = QUEUE.partition_keys


@pytest.fixture
async def api(start_api: StartApi) -> Api:
    return await start_api(queue=QUEUE)


def _port(api: Api) -> int:
    assert api.server.port is not None
    return api.server.port


async def _where(redis: AsyncRedis) -> dict[str, list[str]]:
    """Every job id found in any ready stream or delayed set, with where it was found."""
    found: dict[str, list[str]] = {}
    for keys in PARTS:
        for stream in LANES.streams(keys):
            for _, fields in await redis.xrange(stream):
                found.setdefault(fields["id"], []).append(stream)
        for job_id in await redis.zrange(keys.delayed, 0, -1):
            found.setdefault(job_id, []).append(keys.delayed)
    return found


def _expected_stream(job: dict[str, object], job_id: str) -> str:
    key = job.get("partition_key")
    partition = partition_for(
        job_id,
        len(PARTS),
        partition_key=key if isinstance(key, str) else None,
        idempotency_key=None,
    )
    priority = job.get("priority", 5)
    assert isinstance(priority, int | float)
    return LANES.stream_for(PARTS[partition], int(priority))


ODD_JOBS: list[bytes] = [
    # partition keys of odd types and sizes
    b'{"type":"noop","payload":{},"partition_key":""}',
    b'{"type":"noop","payload":{},"partition_key":7}',
    b'{"type":"noop","payload":{},"partition_key":null}',
    b'{"type":"noop","payload":{},"partition_key":["a"]}',
    b'{"type":"noop","payload":{},"partition_key":{"k":1}}',
    b'{"type":"noop","payload":{},"partition_key":true}',
    b'{"type":"noop","payload":{},"partition_key":"' + b"k" * 201 + b'"}',
    b'{"type":"noop","payload":{},"partition_key":"' + b"k" * 1_000_000 + b'"}',
    b'{"type":"noop","payload":{},"partition_key":"\\ud800"}',
    b'{"type":"noop","payload":{},"partition_key":"\\udcff\\udcfe"}',
    b'{"type":"noop","payload":{},"partition_key":"caf\xe9"}',
    b'{"type":"noop","payload":{},"partition_key":"\\u0000"}',
    b'{"type":"noop","payload":{},"partition_key":"a\\nb"}',
    b'{"type":"noop","payload":{},"partition_key":"\xf0\x9f\x92\xa9"}',
    # priorities at and past the edges
    b'{"type":"noop","payload":{},"priority":0,"partition_key":"p"}',
    b'{"type":"noop","payload":{},"priority":11,"partition_key":"p"}',
    b'{"type":"noop","payload":{},"priority":-1}',
    b'{"type":"noop","payload":{},"priority":"5"}',
    b'{"type":"noop","payload":{},"priority":5.0,"partition_key":"q"}',
    b'{"type":"noop","payload":{},"priority":5.5}',
    b'{"type":"noop","payload":{},"priority":true}',
    b'{"type":"noop","payload":{},"priority":false}',
    b'{"type":"noop","payload":{},"priority":null}',
    b'{"type":"noop","payload":{},"priority":1e400}',
    b'{"type":"noop","payload":{},"priority":99999999999999999999999999}',
    b'{"type":"noop","payload":{},"priority":10.0,"partition_key":"r"}',
    b'{"type":"noop","payload":{},"priority":1,"partition_key":"s","delay_seconds":0}',
    b'{"type":"noop","payload":{},"priority":1,"partition_key":"s","delay_seconds":60}',
]


@pytest.mark.parametrize("body", ODD_JOBS, ids=range(len(ODD_JOBS)))
async def test_an_odd_partition_key_or_priority_is_routed_or_refused_with_a_4xx(
    api: Api, redis_client: AsyncRedis, body: bytes
) -> None:
    answer = await raw_request("127.0.0.1", _port(api), post_bytes("/jobs", body))

    assert answer.status in (202, 413, 422), answer
    found = await _where(redis_client)
    if answer.status != 202:
        assert answer.json()["error"], answer
        assert found == {}
        return
    job_id = answer.json()["jobId"]
    job = orjson.loads(body)
    if job.get("delay_seconds"):
        assert found == {
            job_id: [
                PARTS[
                    partition_for(
                        job_id, 3, partition_key=job["partition_key"], idempotency_key=None
                    )
                ].delayed
            ]
        }
    else:
        assert found == {job_id: [_expected_stream(job, job_id)]}


async def test_a_batch_across_partitions_with_one_bad_item_names_it_and_enqueues_none(
    api: Api, redis_client: AsyncRedis
) -> None:
    good = [{"type": "noop", "payload": {}, "partition_key": f"k{n}", "priority": n % 10 + 1}
            for n in range(12)]  # fmt: skip
    for bad, where in [
        ({"partition_key": 7}, ["jobs", "5"]),
        ({"priority": 0}, ["jobs", "5"]),
        ({"priority": True}, ["jobs", "5"]),
        # a lone surrogate is not JSON text (RFC 8259 8.2): the body as a whole is refused
        ({"partition_key": "\udcff"}, ["body"]),
    ]:
        jobs = [*good[:5], {**good[5], **bad}, *good[6:]]
        body = json.dumps({"jobs": jobs}).encode()  # a lone surrogate as its \u escape

        answer = await raw_request("127.0.0.1", _port(api), post_bytes("/jobs/batch", body))

        assert answer.status == 422, (bad, answer)
        assert [i["field"].split(".")[:2] for i in answer.json()["issues"]] == [where]
    assert await _where(redis_client) == {}


async def test_bad_single_jobs_beside_good_ones_fail_only_themselves(
    api: Api, redis_client: AsyncRedis
) -> None:
    """Concurrent single enqueues share the batcher's round trips, across partitions."""
    port = _port(api)
    bad = [body for body in ODD_JOBS if b'"priority":0' in body or b"\\ud800" in body]
    good = [
        json.dumps(
            {"type": "noop", "payload": {}, "partition_key": f"k{n}", "priority": n % 10 + 1}
        ).encode()
        for n in range(60)
    ]

    answers = await asyncio.gather(
        *(raw_request("127.0.0.1", port, post_bytes("/jobs", body)) for body in [*bad, *good])
    )

    assert {a.status for a in answers[: len(bad)]} == {422}
    accepted = answers[len(bad) :]
    assert {a.status for a in accepted} == {202}
    found = await _where(redis_client)
    for body, answer in zip(good, accepted, strict=True):
        job_id = answer.json()["jobId"]
        assert found[job_id] == [_expected_stream(json.loads(body), job_id)]
    assert len(found) == len(good)


@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_a_dead_letter_route_with_any_job_id_query_answers_4xx(api: Api, method: str) -> None:
    path = "/dead/1-0/replay" if method == "POST" else "/dead/1-0"
    for job_id in [b"", b"%FF%FE", b"%ED%A0%80", b"caf%E9", b"x" * 8000, b"%00", b"a&jobId=b"]:
        request = b"%s %s?jobId=%s HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\n\r\n" % (
            method.encode(),
            path.encode(),
            job_id,
        )
        answer = await raw_request("127.0.0.1", _port(api), request)
        assert 400 <= answer.status < 500, (job_id[:40], answer)
        answer.json()


async def test_a_dead_letter_page_with_any_after_or_limit_answers_200_or_400(api: Api) -> None:
    for query in [b"after=", b"after=abc", b"after=1-", b"after=99999999999999999999999-0",
                  b"after=%FF%FE", b"after=18446744073709551615-18446744073709551615",
                  b"after=0-0&after=1-0", b"limit=0", b"limit=%FF", b"limit=500", b"limit=-1",
                  b"limit=1e3", b"limit=" + b"9" * 5000, b"other=1"]:  # fmt: skip
        request = b"GET /dead?%s HTTP/1.1\r\nHost: p\r\n\r\n" % query
        answer = await raw_request("127.0.0.1", _port(api), request)
        assert answer.status in (200, 400), (query[:40], answer)
        answer.json()
