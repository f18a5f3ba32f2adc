"""A running ``jobqueue producer`` under steady load while its private Redis is frozen
(SIGSTOP), paused (``CLIENT PAUSE``), or down and back (AOF on).

For each fault: every request is answered by its deadline (503 while Redis cannot
take writes; never a 500, never a hang); nothing accepted is lost; every job in the
stream was answered 202 or "outcome unknown" with its id; retrying the unknown ones with
their ids leaves each job exactly once; and the producer takes jobs again once Redis is
back. Short by default; ``JOBQUEUE_FAULTS_LONG=1`` runs 20 s faults under more load.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiohttp import ClientSession, ClientTimeout
from producer.http_api import ProducerProcess
from support.redis_server import RedisServer

from jobqueue.core.keys import QueueKeys

LONG = os.environ.get("JOBQUEUE_FAULTS_LONG") == "1"
FAULT_S = 20.0 if LONG else 4.0
CLIENTS = 32 if LONG else 8
DEADLINE_S = 2.0
ANSWER_WITHIN_S = DEADLINE_S + 8.0
"""The deadline plus a generous margin for a loaded machine; far below the 30 s socket
timeout a request without a deadline would wait."""
RETRY_AFTER_S = 0.2
KEYS = QueueKeys()
JOB = {"type": "report", "payload": {"report_id": 1}}


@dataclass
class Tally:
    """Every answer of the load, by what it says about its job."""

    accepted: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    not_enqueued: list[str] = field(default_factory=list)
    other: list[tuple[int, Any]] = field(default_factory=list)
    slowest_s: float = 0.0
    accepted_after_fault: int = 0

    def line(self, name: str) -> str:
        return (
            f"{name}: accepted {len(self.accepted)}, unknown {len(self.unknown)}, "
            f"not enqueued {len(self.not_enqueued)}, other {len(self.other)}, "
            f"slowest answer {self.slowest_s:.2f} s"
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test alone, persisting every write (a restart loses nothing)."""
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)  # never leave it frozen
    server.stop()


@pytest.fixture
def producer(server: RedisServer) -> Iterator[ProducerProcess]:
    process = ProducerProcess(server.url, JOBQUEUE_REQUEST_DEADLINE_S=str(DEADLINE_S))
    yield process
    process.stop()


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    # A hang shows up as this timeout, far beyond ANSWER_WITHIN_S: the test then fails.
    async with ClientSession(timeout=ClientTimeout(total=60)) as session:
        yield session


async def _post(session: ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any, float]:
    started = time.monotonic()
    headers = {"Content-Type": "application/json"}
    async with session.post(f"{url}/jobs", data=orjson.dumps(body), headers=headers) as response:
        answer = await response.json(content_type=None)
        return response.status, answer, time.monotonic() - started


async def _load(
    session: ClientSession, url: str, tally: Tally, stop: asyncio.Event, fault_over: asyncio.Event
) -> None:
    while not stop.is_set():
        status, body, took = await _post(session, url, JOB)
        tally.slowest_s = max(tally.slowest_s, took)
        if status == 202:
            tally.accepted.append(body["jobId"])
            tally.accepted_after_fault += fault_over.is_set()
        elif status == 503 and body.get("outcome") in ("unknown", "not_enqueued"):
            getattr(tally, body["outcome"]).append(body["jobId"])
            await asyncio.sleep(RETRY_AFTER_S)  # as a client heeding Retry-After, sooner
        else:
            tally.other.append((status, body))
            await asyncio.sleep(0.05)  # a wrong answer is reported, not repeated in a spin


async def _under_load(
    session: ClientSession, url: str, fault: Callable[[], Awaitable[None]]
) -> Tally:
    """Steady load before, during and after ``fault``, until jobs are accepted again."""
    tally, stop, fault_over = Tally(), asyncio.Event(), asyncio.Event()
    clients = [
        asyncio.create_task(_load(session, url, tally, stop, fault_over)) for _ in range(CLIENTS)
    ]
    try:
        await _until(lambda: len(tally.accepted) >= CLIENTS or bool(tally.other), "the load")
        assert tally.other == [], tally.other[:5]
        await fault()
        fault_over.set()
        await _until(lambda: tally.accepted_after_fault >= CLIENTS, "jobs accepted after it")
    finally:
        stop.set()
        await asyncio.gather(*clients)
    return tally


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _settle(session: ClientSession, url: str, server: RedisServer, tally: Tally) -> str:
    """Check the stream against the answers, then retry every unknown job by its id."""
    stream = _stream_ids(server)
    assert len(stream) == len(set(stream)), "a job id appears twice in the stream"
    assert set(tally.accepted) <= set(stream), "an accepted job is missing"
    assert set(stream) <= set(tally.accepted) | set(tally.unknown), "a job nobody was told of"
    assert not set(tally.not_enqueued) & set(stream), "a job answered not_enqueued was written"
    landed = 0
    for job_id in tally.unknown:
        async with session.get(f"{url}/jobs/{job_id}") as response:
            assert response.status in (200, 404)
            assert (response.status == 200) == (job_id in stream), "GET /jobs/{id} disagrees"
            landed += response.status == 200
        status, body, _ = await _post(session, url, {**JOB, "job_id": job_id})
        assert (status, body["duplicate"]) == (202, job_id in stream)
    final = _stream_ids(server)
    assert len(final) == len(set(final)), "a retry enqueued a job twice"
    assert set(final) == set(tally.accepted) | set(tally.unknown)
    return f"unknown that had landed {landed}, retried {len(tally.unknown) - landed}"


def _stream_ids(server: RedisServer) -> list[str]:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        return [fields["id"] for _, fields in client.xrange(KEYS.stream)]
    finally:
        client.close()


def _check_answers(tally: Tally) -> None:
    assert tally.other == [], tally.other[:5]
    assert tally.slowest_s < ANSWER_WITHIN_S


async def test_redis_frozen(
    server: RedisServer, producer: ProducerProcess, session: ClientSession
) -> None:
    async def freeze() -> None:
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        await asyncio.sleep(FAULT_S)
        server.process.send_signal(signal.SIGCONT)

    tally = await _under_load(session, producer.url, freeze)

    _check_answers(tally)
    assert tally.unknown or tally.not_enqueued, "no request met the freeze"
    print(tally.line("frozen"), await _settle(session, producer.url, server, tally))


async def test_redis_client_pause(
    server: RedisServer, producer: ProducerProcess, session: ClientSession
) -> None:
    admin = redis.Redis.from_url(server.url)

    async def pause() -> None:
        admin.execute_command("CLIENT", "PAUSE", str(int(FAULT_S * 1000)), "ALL")
        await asyncio.sleep(FAULT_S)

    try:
        tally = await _under_load(session, producer.url, pause)
    finally:
        admin.close()

    _check_answers(tally)
    assert tally.unknown or tally.not_enqueued, "no request met the pause"
    print(tally.line("paused"), await _settle(session, producer.url, server, tally))


async def test_redis_down_and_back(
    server: RedisServer, producer: ProducerProcess, session: ClientSession
) -> None:
    async def down() -> None:
        server.kill()
        await asyncio.sleep(FAULT_S)
        server.start()

    tally = await _under_load(session, producer.url, down)

    _check_answers(tally)
    assert tally.unknown or tally.not_enqueued, "no request met the outage"
    print(tally.line("down"), await _settle(session, producer.url, server, tally))
