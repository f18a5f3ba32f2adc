"""HTTP that aiohttp's parser refuses before any route runs still gets a JSON error
body from a running ``jobqueue producer``, and the producer keeps serving."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from producer.http_api import README_EXAMPLE, ProducerProcess, post_bytes, raw_request

MALFORMED = {
    "bad chunk size": b"POST /jobs HTTP/1.1\r\nHost: p\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "Content-Length with Transfer-Encoding": b"POST /jobs HTTP/1.1\r\nHost: p\r\n"
    b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
    "control character in a header": b"GET /healthz HTTP/1.1\r\nHost: p\r\nX-A: a\x01b\r\n\r\n",
    "space before the version": b"GET /healthz\n HTTP/1.1\r\nHost: p\r\n\r\n",
    "two Content-Lengths": b"POST /jobs HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\n"
    b"Content-Length: 3\r\n\r\n{}",
    "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "header line too long": b"GET /healthz HTTP/1.1\r\nHost: p\r\nX-Long: "
    + b"a" * 70_000
    + b"\r\n\r\n",
}


@pytest.fixture
def producer(redis_url: str) -> Iterator[ProducerProcess]:
    process = ProducerProcess(redis_url)
    yield process
    process.stop()


@pytest.mark.parametrize("name", sorted(MALFORMED))
async def test_a_request_the_parser_refuses_gets_a_json_error(
    producer: ProducerProcess, name: str
) -> None:
    answer = await raw_request("127.0.0.1", producer.port, MALFORMED[name])

    assert 400 <= answer.status < 500, (name, answer)
    body = answer.json()
    assert body["error"], name
    assert "Traceback" not in body.get("detail", "")
    served = await raw_request("127.0.0.1", producer.port, post_bytes("/jobs", README_EXAMPLE))
    assert served.status == 202, producer.output()
