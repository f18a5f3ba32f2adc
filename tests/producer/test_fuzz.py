"""Fuzzing a running ``jobqueue producer`` over real HTTP: requests drawn from its own
``/openapi.json`` (valid and invalid, every operation) plus hostile headers and bodies,
sent many at a time, to a plain queue and to one with priority lanes and partitions
(where each accepted job must be in the stream of its lane in its partition). Nothing
may answer 5xx or anything but JSON, and after every round the queue holds exactly the
jobs answered 202 as new (less those cancelled): none lost, none twice, none nobody was
told of.

Short by default; ``JOBQUEUE_FUZZ_EXAMPLES=5000`` (say) runs a long, randomised session.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from producer.http_api import README_EXAMPLE, ProducerProcess, RawAnswer, raw_request

from jobqueue.core.lanes import NO_LANES, Lanes, parse_lanes
from jobqueue.core.settings import QueueSettings

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("JOBQUEUE_FUZZ_EXAMPLES", "50"))
LONG = EXAMPLES > 200
TOKEN = "fuzz-token"
SHAPES = {
    "plain": {},
    "lanes+partitions": {
        "JOBQUEUE_LANES": "high:8-10,normal:4-7,low:1-3",
        "JOBQUEUE_PARTITIONS": "3",
    },
}
DROPPED_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
CONTENT_TYPES = [
    b"application/json",
    b"application/json; charset=utf-8",
    b"text/plain",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=zz",
    b"application/problem+json",
    b"",
]
header_name = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1)
# Any byte but CR and LF, which would end the header (malformed framing has its own test).
header_value = st.binary(max_size=64).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, bytes]
    body: bytes

    def raw(self) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1".encode(), b"Host: producer"]
        lines += [name.encode() + b": " + value for name, value in self.headers.items()]
        lines += [b"Content-Length: %d" % len(self.body), b"Connection: close", b"", b""]
        return b"\r\n".join(lines) + self.body


@dataclass
class Ledger:
    """What the producer said it did, over the whole session."""

    new: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    answers: int = 0

    def record(self, request: Request, answer: RawAnswer) -> None:
        self.answers += 1
        assert answer.status < 500, (request, answer)
        if not request.target.startswith("/metrics"):
            body = answer.json()  # asserts the content type
        if answer.status == 202:
            jobs = body.get("jobs", [body])
            self.new |= {job["jobId"] for job in jobs if not job["duplicate"]}
        if request.method == "DELETE" and answer.status == 200 and body["result"] == "cancelled":
            self.cancelled.add(body["jobId"])


@pytest.fixture(scope="module", params=list(SHAPES))
def producer(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProducerProcess]:
    from support.redis_server import RedisServer

    shape = SHAPES[request.param]

    server = RedisServer(tmp_path_factory.mktemp("fuzz-redis"))
    server.start()
    # Long polls of jobs the fuzz enqueued (no worker runs them) end after 0.5 s.
    process = ProducerProcess(
        server.url, JOBQUEUE_AUTH_TOKENS=TOKEN, JOBQUEUE_MAX_WAIT_S="0.5", **shape
    )
    process.redis_url = server.url  # type: ignore[attr-defined]
    process.shape = shape  # type: ignore[attr-defined]
    yield process
    process.stop()
    server.stop()


def _from_case(case: Any, base_url: str) -> Request:
    """A schemathesis case as raw bytes we control (the transport's own headers dropped)."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    parts = urllib.parse.urlsplit(kwargs["url"])
    query = urllib.parse.urlencode(kwargs.get("params") or {}, doseq=True)
    target = parts.path + (f"?{query}" if query else "")
    headers = {
        name: str(value).encode("utf-8", "surrogateescape").replace(b"\r", b"").replace(b"\n", b"")
        for name, value in (kwargs.get("headers") or {}).items()
        if name.lower() not in DROPPED_HEADERS and name.lower() != "authorization"
    }
    if "json" in kwargs:
        body = json.dumps(kwargs["json"]).encode()  # lone surrogates become \\udcxx escapes
    else:
        data = kwargs.get("data") or b""
        body = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)
    return Request(kwargs["method"], target, headers, body)


@st.composite
def hostile(draw: st.DrawFn, request: Request) -> Request:
    """``request`` with some of its headers and body made hostile."""
    headers = dict(request.headers)
    authorization = draw(st.sampled_from(["valid", "valid", "valid", "none", "bytes"]))
    if authorization == "valid":
        headers["Authorization"] = f"Bearer {TOKEN}".encode()
    elif authorization == "bytes":
        headers["Authorization"] = b"Bearer " + draw(header_value)
    if draw(st.integers(0, 4)) == 0:
        headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES) | header_value)
    if draw(st.integers(0, 4)) == 0:
        headers["Idempotency-Key"] = draw(header_value)
    for name, value in draw(st.lists(st.tuples(header_name, header_value), max_size=3)):
        headers.setdefault(name, value)
    body = request.body
    if draw(st.integers(0, 9)) == 0:
        body = draw(st.binary(max_size=256))
    return Request(request.method, request.target, headers, body)


def _retry_storm(job_id: str, copies: int) -> list[Request]:
    """One job sent ``copies`` times at once with the same id, as retrying clients do."""
    job = json.loads(README_EXAMPLE)
    body = json.dumps({**job, "job_id": job_id}).encode()
    headers = {"Authorization": f"Bearer {TOKEN}".encode(), "Content-Type": b"application/json"}
    return [Request("POST", "/jobs", headers, body) for _ in range(copies)]


def _queued_ids(redis_url: str, shape: dict[str, str]) -> list[str]:
    """Every job id in a ready stream or a delayed set, once per place it is in; a job in
    a stream that is not its lane's in its partition is reported as misplaced."""
    lanes: Lanes = parse_lanes(shape["JOBQUEUE_LANES"]) if shape else NO_LANES
    partitions = QueueSettings(partitions=int(shape.get("JOBQUEUE_PARTITIONS", "1"))).partition_keys
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        ids = []
        for keys in partitions:
            for stream in lanes.streams(keys):
                for _, fields in client.xrange(stream):
                    right = lanes.stream_for(keys, int(fields["priority"]))
                    ids.append(fields["id"] if stream == right else f"misplaced {fields}")
            ids += client.zrange(keys.delayed, 0, -1)
        return ids
    finally:
        client.close()


async def _send_all(producer: ProducerProcess, requests: list[Request]) -> list[RawAnswer]:
    return await asyncio.gather(
        *(raw_request("127.0.0.1", producer.port, request.raw()) for request in requests)
    )


def test_no_request_answers_5xx_and_the_queue_holds_exactly_the_accepted_jobs(
    producer: ProducerProcess,
) -> None:
    schema = schemathesis.openapi.from_url(f"{producer.url}/openapi.json")
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    cases = st.one_of(*(schema.as_strategy(mode) for mode in modes))
    ledger = Ledger()

    @given(
        batch=st.lists(cases.map(lambda case: _from_case(case, producer.url)).flatmap(hostile),
                       min_size=4, max_size=16),
        storm=st.tuples(st.from_regex(r"[0-9A-Za-z_-]{1,64}", fullmatch=True), st.integers(1, 8)),
    )  # fmt: skip
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not LONG,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def round_of_requests(batch: list[Request], storm: tuple[str, int]) -> None:
        requests = batch + _retry_storm(*storm)
        answers = asyncio.run(_send_all(producer, requests))
        for request, answer in zip(requests, answers, strict=True):
            ledger.record(request, answer)
        queued = _queued_ids(producer.redis_url, producer.shape)  # type: ignore[attr-defined]
        assert len(queued) == len(set(queued)), "a job is queued twice"
        assert set(queued) == ledger.new - ledger.cancelled, producer.output()

    round_of_requests()
    print(f"fuzz: {ledger.answers} requests, {len(ledger.new)} jobs accepted")
    assert ledger.new, "no round enqueued anything: the strategies are broken"
