"""Retrying an enqueue whose outcome is unknown never enqueues a job twice: the client
fixes each job's id before the call, and the script answers a known id as a duplicate.

The lost reply is real: a TCP proxy between the client and Redis lets the enqueue
through, then closes the connection instead of passing Redis's answer back, so redis-py
retries the very same call on a new connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis as AsyncRedis
from support.redis_server import RedisServer

from jobqueue.core.client import AsyncClient, EnqueueExpired, NewJob
from jobqueue.core.connection import async_redis
from jobqueue.core.keys import QueueKeys

KEYS = QueueKeys()


class ReplyDropper:
    """Forwards a client's connections to Redis; the first reply to an ``EVALSHA`` is
    swallowed and that connection closed (the write happened, the answer is lost)."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.dropped = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.redis_port)
        sent_script = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if b"EVALSHA" in data.upper():
                    sent_script.set()
                redis_w.write(data)
                await redis_w.drain()

        async def downstream() -> None:
            while data := await redis_r.read(65536):
                if sent_script.is_set() and self.dropped == 0:
                    self.dropped += 1
                    return  # the script ran; its reply never reaches the client
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        client_w.close()
        redis_w.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def dropper(redis_server: RedisServer, redis_url: str) -> AsyncIterator[ReplyDropper]:
    proxy = ReplyDropper(redis_server.port)
    await proxy.start()
    yield proxy
    await proxy.close()


async def test_a_lost_reply_is_retried_without_a_second_job(
    dropper: ReplyDropper, redis_client: AsyncRedis
) -> None:
    await AsyncClient(redis_client).enqueue("warm", {})  # the script is loaded
    await redis_client.delete(KEYS.stream)
    client = AsyncClient(async_redis(dropper.url), owns_redis=True)
    try:
        results = await client.enqueue_many([NewJob("report", {"n": n}) for n in range(3)])
    finally:
        await client.aclose()

    assert dropper.dropped == 1
    assert [r.duplicate for r in results] == [True, True, True]  # found, written by the first
    entries = await redis_client.xrange(KEYS.stream)
    assert [fields["id"] for _, fields in entries] == [r.job_id for r in results]


async def test_a_caller_chosen_job_id_enqueues_once(redis_client: AsyncRedis) -> None:
    client = AsyncClient(redis_client)

    first = await client.enqueue("report", {"n": 1}, job_id="order-42")
    again = await client.enqueue("report", {"n": 2}, job_id="order-42")

    assert (first.job_id, first.duplicate) == ("order-42", False)
    assert (again.job_id, again.duplicate, again.entry_id) == ("order-42", True, first.entry_id)
    assert await redis_client.xlen(KEYS.stream) == 1


async def test_past_its_deadline_by_redis_clock_an_enqueue_writes_nothing(
    redis_client: AsyncRedis,
) -> None:
    client = AsyncClient(redis_client)

    with pytest.raises(EnqueueExpired) as expired:
        await client.enqueue_many([NewJob("report", {"n": 1}, job_id="late")], not_after_ms=1)

    assert expired.value.job_ids == ["late"]
    assert await redis_client.xlen(KEYS.stream) == 0
    assert not await redis_client.exists(KEYS.status("late"))
