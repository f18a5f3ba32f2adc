"""Every script of a queue stays in the queue's Redis Cluster slot.

A redis-server in cluster mode refuses a script that touches keys of another slot than
the keys it declared, even when it owns every slot. Here one such node owning all 16384
slots (a plain client needs no redirects) runs a queue's whole life: enqueue (batch,
delayed, idempotent), cancel, the worker's reads, successes, retries, dead letters and
promotion, replay, trimming, consumer pruning and stats. A script that built a key of
another slot (the pre-0.2 ``jobs:dead`` default, a key built from a prefix) fails here.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from support.redis_server import RedisServer, free_port
from worker.conftest import eventually, run_burst, settings_for

from jobqueue.core.client import AsyncClient, NewJob
from jobqueue.core.connection import async_redis
from jobqueue.core.consumers import delete_consumer_if_idle
from jobqueue.core.keys import QueueKeys
from jobqueue.core.settings import QueueSettings
from jobqueue.worker.testing import app
from jobqueue.worker.trim import Trimmer

KEYS = QueueKeys()


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    while True:
        port = free_port()
        if port <= 55535:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


@pytest.fixture
def cluster_node(tmp_path: Path) -> Iterator[RedisServer]:
    """One redis-server in cluster mode that owns every slot."""
    server = RedisServer(
        tmp_path / "node",
        extra_args=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
    )
    server.port = cluster_port()
    server.start()
    client = redis.Redis(port=server.port, decode_responses=True)
    client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    deadline = time.monotonic() + 20
    while client.cluster("info")["cluster_state"] != "ok":
        if time.monotonic() > deadline:
            pytest.fail("the one-node cluster did not become ready")
        time.sleep(0.05)
    client.close()
    yield server
    server.stop()


@pytest.fixture
async def node(cluster_node: RedisServer) -> AsyncIterator[AsyncRedis]:
    client = async_redis(cluster_node.url)
    yield client
    await client.aclose()


async def test_the_node_refuses_a_script_touching_another_slot(node: AsyncRedis) -> None:
    # The check this file relies on: the pre-0.2 dead-letter default is another slot.
    with pytest.raises(redis.ResponseError, match="slot"):
        await node.eval(  # type: ignore[misc]
            "#!lua\nredis.call('XADD', 'jobs:dead', '*', 'a', 'b') return 1", 1, KEYS.stream
        )


async def test_a_queue_lives_its_whole_life_in_one_slot(
    cluster_node: RedisServer, node: AsyncRedis
) -> None:
    client = AsyncClient(node, QueueSettings(redis_url=cluster_node.url))
    done = await client.enqueue_many([NewJob("noop", {"n": n}) for n in range(5)])
    soon = await client.enqueue("noop", {}, delay_s=0.2)
    first = await client.enqueue("noop", {}, idempotency_key="order-1")
    again = await client.enqueue("noop", {}, idempotency_key="order-1")
    failing = await client.enqueue("fail", {})
    never = await client.enqueue("noop", {}, delay_s=3600)
    dropped = await client.enqueue("noop", {})
    echoed = await client.enqueue("echo", {"value": {"k": 1}})
    # waiters on a success, a dead letter and a cancellation: every announcement too
    waits = [client.wait(job.job_id, timeout=60) for job in (echoed, failing, never)]
    waiters = [asyncio.create_task(wait) for wait in waits]

    async def registered() -> bool:
        return int(await node.zcard(KEYS.waiting)) == 3

    await eventually(registered, what="three waiters registered")
    assert (again.duplicate, again.job_id, again.state) == (True, first.job_id, "queued")
    assert (await client.cancel(never.job_id)).answer == "cancelled"
    assert (await client.cancel(dropped.job_id)).answer == "cancelled"

    settings = settings_for(cluster_node.url, max_attempts=2)
    assert await run_burst(app, settings, timeout_s=60) == 0

    states = [await client.get(job.job_id) for job in [*done, soon, first]]
    assert [info.state if info else None for info in states] == ["succeeded"] * 7
    settled = await asyncio.wait_for(asyncio.gather(*waiters), 60)
    assert [(i.state, i.result) if i else None for i in settled] == [
        ("succeeded", {"k": 1}), ("dead", None), ("cancelled", None)
    ]  # fmt: skip
    assert len(await node.xrange(KEYS.settled)) == 3
    dead = await client.get(failing.job_id)
    assert dead is not None
    assert (dead.state, dead.attempts) == ("dead", 2)
    page = await client.dead_letters()
    assert [d.fields["original_id"] for d in page.items] == [failing.job_id]

    replayed = await client.replay(page.items[0].entry_id)
    assert replayed is not None
    assert replayed.state == "queued"
    assert await run_burst(app, settings, timeout_s=60) == 0
    assert len((await client.dead_letters()).items) == 1

    assert await Trimmer(node, KEYS).trim() > 0
    assert await delete_consumer_if_idle(node, KEYS, settings.consumer)
    stats = await client.stats()
    assert (stats.lag, stats.pending, stats.delayed) == (0, 0, 0)
