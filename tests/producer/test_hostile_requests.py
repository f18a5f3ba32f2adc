"""Requests no well-behaved client sends: bytes that are not UTF-8 in any header, bodies
that are not JSON, ids with a trailing newline, leap seconds. Each gets a clear 4xx (or is
served), never a 500, and never fails a good request beside it."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from producer.http_api import README_EXAMPLE, Api, StartApi, post_bytes, raw_request
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import decode

KEYS = QueueKeys()
UNDECODABLE = [b"\xff\xfe", b"caf\xe9", b"\xc3", b"ok\xed\xa0\x80"]
"""Raw header bytes that are not UTF-8: Latin-1, a cut sequence, an encoded surrogate."""


def _port(api: Api) -> int:
    assert api.server.port is not None
    return api.server.port


async def test_an_idempotency_key_that_is_not_utf8_is_422_and_fails_no_other_request(
    api: Api, redis_client: AsyncRedis
) -> None:
    """Bad keys among many concurrent good requests: they share the batcher's round trips."""
    port = _port(api)
    bad = [
        raw_request(
            "127.0.0.1", port, post_bytes("/jobs", README_EXAMPLE, b"Idempotency-Key: %s\r\n" % key)
        )
        for key in UNDECODABLE
    ]
    good = [raw_request("127.0.0.1", port, post_bytes("/jobs", README_EXAMPLE)) for _ in range(200)]

    answers = await asyncio.gather(*bad, *good)

    for answer in answers[: len(bad)]:
        assert answer.status == 422, answer
        assert answer.json()["issues"][0]["field"] == "Idempotency-Key"
    assert {answer.status for answer in answers[len(bad) :]} == {202}
    assert await redis_client.xlen(KEYS.stream) == 200


async def test_a_utf8_idempotency_key_header_works(api: Api, redis_client: AsyncRedis) -> None:
    port = _port(api)
    request = post_bytes("/jobs", README_EXAMPLE, "Idempotency-Key: café\r\n".encode())

    first, again = [await raw_request("127.0.0.1", port, request) for _ in range(2)]

    assert (first.status, again.status) == (202, 202)
    assert again.json()["duplicate"] is True
    assert again.json()["jobId"] == first.json()["jobId"]
    [(entry_id, fields)] = await redis_client.xrange(KEYS.stream)
    assert decode(entry_id, fields).extra["idempotency_key"] == "café"


async def test_a_token_that_is_not_utf8_is_401_on_every_protected_route(
    start_api: StartApi,
) -> None:
    api = await start_api(auth_tokens=("s3cret",))
    port = _port(api)
    for token in [*UNDECODABLE, b"s3cret\xff"]:
        authorization = b"Authorization: Bearer %s\r\n" % token
        requests = [
            post_bytes("/jobs", README_EXAMPLE, authorization),
            b"GET /jobs/stats HTTP/1.1\r\nHost: p\r\n%s\r\n" % authorization,
            b"GET /dead HTTP/1.1\r\nHost: p\r\n%s\r\n" % authorization,
            b"DELETE /jobs/01X HTTP/1.1\r\nHost: p\r\n%s\r\n" % authorization,
        ]
        for request in requests:
            answer = await raw_request("127.0.0.1", port, request)
            assert answer.status == 401, (token, request)
            assert answer.json()["error"] == "Unauthorized"


async def test_other_headers_that_are_not_utf8_do_not_matter(api: Api) -> None:
    headers = b"X-Trace: \xff\xfe\r\nAccept: caf\xe9\r\nUser-Agent: \xc3\r\n"

    answer = await raw_request(
        "127.0.0.1", _port(api), post_bytes("/jobs", README_EXAMPLE, headers)
    )

    assert answer.status == 202


@pytest.mark.parametrize(
    "content_type",
    [
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"application/octet-stream",
        b"application/jsonp",
        b"\xff/json",
    ],
)
async def test_a_body_that_is_not_declared_json_is_415(
    api: Api, redis_client: AsyncRedis, content_type: bytes
) -> None:
    """A form or text/plain POST is what a web page may send cross-site without CORS."""
    for path, body in (
        ("/jobs", README_EXAMPLE),
        ("/jobs/batch", b'{"jobs":[%s]}' % README_EXAMPLE),
    ):
        request = post_bytes(path, body, content_type=content_type)

        answer = await raw_request("127.0.0.1", _port(api), request)

        assert answer.status == 415, (path, content_type)
        assert answer.json()["error"] == "Unsupported Media Type"
        assert "application/json" in answer.json()["detail"]
    assert await redis_client.xlen(KEYS.stream) == 0


async def test_json_content_types_with_parameters_or_suffix_are_accepted(api: Api) -> None:
    for content_type in (
        b"application/json; charset=utf-8",
        b"application/vnd.jobs+json",
        b"Application/JSON",
    ):
        request = post_bytes("/jobs", README_EXAMPLE, content_type=content_type)

        answer = await raw_request("127.0.0.1", _port(api), request)

        assert answer.status == 202, content_type


async def test_ids_with_a_trailing_newline_are_400_not_500(api: Api) -> None:
    for query in ("after=1-1%0A", "after=1-1%0D%0A", "limit=5%0A", "after=%0A1-1"):
        status, body = await api.call("GET", f"/dead?{query}")
        assert (status, body["error"]) == (400, "Invalid query"), query
    for path in ("/dead/1-1%0A/replay", "/jobs/01X%0A"):
        status, _ = await api.call("POST" if path.endswith("replay") else "GET", path)
        assert status == 404, path


async def test_a_leap_second_run_at_is_accepted_as_openapi_promises(
    api: Api, redis_client: AsyncRedis
) -> None:
    _, document = await api.call("GET", "/openapi.json")
    run_at = document["components"]["schemas"]["JobIn"]["properties"]["run_at"]
    assert {"type": "string", "format": "date-time"} in run_at["anyOf"]

    job = {"type": "noop", "payload": {}, "run_at": "2016-12-31T23:59:60.5Z"}
    status, body = await api.call("POST", "/jobs", data=orjson.dumps(job))

    assert status == 202
    assert body["state"] == "queued"  # in the past: runs now
    job["run_at"] = "2999-12-31T23:59:60Z"
    status, body = await api.call("POST", "/jobs", data=orjson.dumps(job))

    assert (status, body["state"]) == (202, "delayed")
    _, info = await api.call("GET", f"/jobs/{body['jobId']}")
    assert info["runAt"] == "3000-01-01T00:00:00.000Z"


async def test_a_run_at_beyond_what_utc_can_hold_is_422(api: Api) -> None:
    for run_at in (
        "9999-12-31T23:59:60Z",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+01:00",
    ):
        job = {"type": "noop", "payload": {}, "run_at": run_at}

        status, body = await api.call("POST", "/jobs", data=orjson.dumps(job))

        assert status == 422, run_at
        assert body["issues"][0]["field"] == "run_at"
