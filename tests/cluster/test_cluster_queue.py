"""A queue on a Redis Cluster: real workers and the client run jobs end to end, and
nothing is lost while the queue's slot migrates to another primary or its primary
fails over to a replica."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from redis.cluster import RedisCluster as SyncCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from support.redis_cluster import RedisCluster
from support.worker_process import WorkerProcess

from jobqueue.core.client import Client, NewJob, PartlyEnqueued
from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import parse_lanes
from jobqueue.core.partitions import partition_of
from jobqueue.core.settings import QueueSettings
from jobqueue.worker.hot_connection import HotConnection

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
KEYS = QueueKeys()
DONE = "{cluster-test}:done"
PARTS = "parts:work"


@pytest.fixture
def reader(cluster: RedisCluster) -> Iterator[SyncCluster]:
    client = SyncCluster.from_url(
        f"redis://127.0.0.1:{cluster.nodes[0].port}", decode_responses=True
    )
    yield client
    client.close()


def _worker(
    cluster: RedisCluster, name: str, partitions: int = 1, stream: str = KEYS.stream
) -> WorkerProcess:
    owner = cluster.owner(stream)
    worker = WorkerProcess(
        cluster.url,
        name,
        *("--concurrency", "8", "--partitions", str(partitions), "--stream", stream),
        watch_url=f"redis://127.0.0.1:{owner.port}/0",
    )
    worker.start()
    worker.wait_ready()
    return worker


def _wait_done(reader: SyncCluster, ids: list[str], worker: WorkerProcess) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        done = reader.hgetall(DONE)
        if set(ids) <= set(done):
            return
        time.sleep(0.1)
    missing = set(ids) - set(reader.hgetall(DONE))
    raise AssertionError(f"{len(missing)} of {len(ids)} jobs not run:\n{worker.output()}")


def _load(
    url: str, ids: list[str], stop: threading.Event, partitions: int, stream: str
) -> threading.Thread:
    """Enqueue jobs of caller-chosen ids until ``stop``; an enqueue that fails is sent
    again with the same id (at most once enqueued), as a careful producer does."""

    def run() -> None:
        with Client.from_url(url, partitions=partitions, stream=stream) as client:
            while not stop.is_set():
                job_id = uuid.uuid4().hex
                while True:
                    try:
                        client.enqueue("record", {"into": DONE}, job_id=job_id)
                        break
                    except RedisError:
                        time.sleep(0.05)
                ids.append(job_id)
                time.sleep(0.005)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _under_load(
    cluster: RedisCluster,
    reader: SyncCluster,
    disturb: Callable[[], None],
    partitions: int = 1,
    ids: list[str] | None = None,
    stream: str = KEYS.stream,
) -> None:
    ids = [] if ids is None else ids
    stop = threading.Event()
    with _worker(cluster, f"w-{uuid.uuid4().hex[:6]}", partitions, stream) as worker:
        thread = _load(cluster.url, ids, stop, partitions, stream)
        try:
            deadline = time.monotonic() + 30
            while len(ids) < 100 and time.monotonic() < deadline:
                time.sleep(0.05)
            disturb()
            mark = len(ids)
            while len(ids) < mark + 100 and time.monotonic() < deadline + 30:
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(30)
        assert len(ids) >= mark + 100, "enqueueing did not resume after the disturbance"
        _wait_done(reader, ids, worker)
        assert worker.poll() is None, worker.output()


def test_a_worker_and_the_client_run_jobs_on_a_cluster(
    cluster: RedisCluster, reader: SyncCluster
) -> None:
    with Client.from_url(cluster.url) as client:
        jobs = client.enqueue_many([NewJob("record", {"into": DONE})] * 200)
        assert client.stats().length == 200
    ids = [job.job_id for job in jobs]
    with _worker(cluster, "w-e2e") as worker:
        with Client.from_url(cluster.url) as client:
            # Blocks on the queue's settled stream, in its slot: routed like any key.
            waited = client.wait(ids[-1], 60)
        assert waited is not None
        assert waited.state == "succeeded", worker.output()
        _wait_done(reader, ids, worker)
    assert sum(int(v) for v in reader.hgetall(DONE).values()) == 200
    with Client.from_url(cluster.url) as client:
        assert client.get(ids[0]).state == "succeeded"  # type: ignore[union-attr]


def test_priority_lanes_run_on_a_cluster(cluster: RedisCluster, reader: SyncCluster) -> None:
    # given jobs in three lane streams of the queue's slot, high ones failing once (their
    # retries come back through the delayed set's promotion into their lane)
    lanes = {"high": (KEYS.lane("high"), "9"), "normal": (KEYS.stream, "5")}
    lanes["low"] = (KEYS.lane("low"), "2")
    ids = []
    for name, (stream, priority) in lanes.items():
        for n in range(20):
            job_id = f"{name}-{n}"
            job_type, payload = (
                ("fail", {"times": 1, "into": DONE})
                if name == "high"
                else ("record", {"into": DONE})
            )
            fields = {"id": job_id, "type": job_type, "payload": json.dumps(payload)}
            reader.xadd(stream, {**fields, "priority": priority, "attempts": "0"})
            ids.append(job_id)
    # when a worker with the lanes declared runs them (every lane script in one slot)
    owner = cluster.owner(KEYS.stream)
    env = {"JOBQUEUE_LANES": "high:8-10,normal:4-7,low:1-3", "JOBQUEUE_BACKOFF_BASE_S": "0.05"}
    worker = WorkerProcess(
        cluster.url, "w-lanes", "--concurrency", "8", env=env,
        watch_url=f"redis://127.0.0.1:{owner.port}/0",
    )  # fmt: skip
    worker.start()
    worker.wait_ready()
    with worker:
        # then every job ran, the high ones retried in their lane
        _wait_done(reader, ids, worker)
        assert reader.xlen(KEYS.lane("high")) == 40, worker.output()
        assert worker.poll() is None, worker.output()


def test_the_client_routes_cancels_and_counts_lanes_on_a_cluster(
    cluster: RedisCluster, reader: SyncCluster
) -> None:
    # Every lane stream is in the queue's slot and in the scripts' KEYS: a cluster's
    # key checks (#!lua) would refuse the enqueue and cancel scripts otherwise.
    lanes = parse_lanes("high:8-10,normal:4-7,low:1-3")
    with Client(QueueSettings(redis_url=cluster.url, lanes=lanes)) as client:
        jobs = client.enqueue_many([NewJob("record", {}, priority=p) for p in (10, 5, 1, 9)])
        cancelled = client.cancel(jobs[3].job_id)
        stats = client.stats()

    assert cancelled.answer == "cancelled"
    assert [e[0] for e in reader.xrange(KEYS.lane("high"))] == [jobs[0].entry_id]
    assert [e[0] for e in reader.xrange(KEYS.lane("low"))] == [jobs[2].entry_id]
    assert [(lane.name, lane.length) for lane in stats.lanes] == [
        ("high", 1),
        ("normal", 1),
        ("low", 1),
    ]


def test_nothing_is_lost_while_the_queue_slot_migrates(
    cluster: RedisCluster, reader: SyncCluster
) -> None:
    source = cluster.owner(KEYS.stream)
    target = next(node for node in cluster.primaries() if node is not source)
    _under_load(cluster, reader, lambda: cluster.migrate_slot(KEYS.stream, target))
    assert cluster.owner(KEYS.stream) is target


def test_nothing_is_lost_when_the_queue_primary_fails_over(
    cluster: RedisCluster, reader: SyncCluster
) -> None:
    old = cluster.owner(KEYS.stream)
    promoted: list[object] = []
    _under_load(cluster, reader, lambda: promoted.append(cluster.failover(old)))
    assert cluster.owner(KEYS.stream) is promoted[0]


def test_a_partitioned_queue_runs_on_every_primary_through_a_migration_and_a_failover(
    cluster: RedisCluster, reader: SyncCluster
) -> None:
    # Given a queue of 3 partitions: one on each primary (a queue of its own: other
    # tests move the slot of jobs:work)
    settings = QueueSettings(redis_url=cluster.url, partitions=3, stream=PARTS)
    partitions = settings.partition_keys
    streams = [keys.stream for keys in partitions]
    owners = [cluster.owner(stream) for stream in streams]
    assert len({node.port for node in owners}) == 3
    # and jobs of 3 partition keys, each key's in one partition in enqueue order
    with Client(settings) as client:
        jobs = [
            NewJob("record", {"into": DONE, "n": n}, partition_key=f"k{n % 3}") for n in range(30)
        ]
        ids = [job.job_id for job in client.enqueue_many(jobs)]
    for key in ("k0", "k1", "k2"):
        entries = reader.xrange(streams[partition_of(key, 3)])
        ns = [json.loads(f["payload"])["n"] for _, f in entries if f["partition_key"] == key]
        assert ns == [n for n in range(30) if n % 3 == int(key[1])]

    # When, under load, partition 1's slot moves to partition 2's primary and then
    # partition 0's primary fails over to its replica
    def disturb() -> None:
        cluster.migrate_slot(streams[1], owners[2])
        cluster.failover(owners[0])

    _under_load(cluster, reader, disturb, partitions=3, ids=ids, stream=PARTS)

    # Then every job ran (checked by _under_load), and the slots are where they went
    assert cluster.owner(streams[1]) is owners[2]
    assert cluster.owner(streams[0]) is not owners[0]


def test_a_batch_one_partition_of_which_fails_says_which_jobs_were_enqueued(
    cluster: RedisCluster, reader: SyncCluster
) -> None:
    settings = QueueSettings(redis_url=cluster.url, partitions=3, stream="partly:work")
    full = cluster.owner(settings.partition_keys[2].stream)
    with cluster.client(full.port) as node:
        node.config_set("maxmemory", "1")  # refuses every write: OOM
        try:
            with Client(settings) as client, pytest.raises(PartlyEnqueued) as raised:
                client.enqueue_many([NewJob("noop", {})] * 30)
        finally:
            node.config_set("maxmemory", "0")

    written = set(raised.value.enqueued)
    stored = {f["id"] for k in settings.partition_keys for _, f in reader.xrange(k.stream)}
    assert written == stored
    assert 0 < len(written) < 30


def test_the_hot_connection_follows_a_moved_slot(cluster: RedisCluster) -> None:
    async def scenario() -> None:
        hot = HotConnection(cluster.url, key=KEYS.stream)
        try:
            assert await hot.call(("SET", KEYS.delayed, "x"), timeout_s=10) == ["OK"]
            source = cluster.owner(KEYS.stream)
            target = next(node for node in cluster.primaries() if node is not source)
            await asyncio.to_thread(cluster.migrate_slot, KEYS.stream, target)
            with pytest.raises(RedisConnectionError):
                await hot.call(("GET", KEYS.delayed), timeout_s=10)  # MOVED: reconnect
            assert await hot.call(("GET", KEYS.delayed), timeout_s=10) == ["x"]
        finally:
            hot.close()

    asyncio.run(scenario())


def test_the_hot_connection_follows_ask_during_a_migration(cluster: RedisCluster) -> None:
    async def scenario() -> None:
        hot = HotConnection(cluster.url, key=KEYS.stream)
        source = cluster.owner(KEYS.stream)
        target = next(node for node in cluster.primaries() if node is not source)
        try:
            assert await hot.call(("SET", KEYS.delayed, "x"), ("PING",), timeout_s=10) == [
                "OK",
                "PONG",
            ]
            cluster.begin_migration(KEYS.stream, target)
            cluster.move_keys(source, target, [KEYS.delayed])
            # The source answers ASK for the key that left; the command is sent again
            # to the target after ASKING, the other one is answered in place.
            assert await hot.call(("PING",), ("GET", KEYS.delayed), timeout_s=10) == ["PONG", "x"]
            assert hot.connected
        finally:
            cluster.end_migration(KEYS.stream, target)
            hot.close()

    asyncio.run(scenario())
