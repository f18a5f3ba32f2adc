"""Replicated enqueue on a Redis Cluster: each partition's enqueue script and its WAIT go
to the primary that owns the partition's slot, so an accepted job is on that primary's
replica; fewer acknowledgements than asked is `EnqueueUnconfirmed` (503 over HTTP)
naming the jobs; a primary failing over under load loses no accepted job."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from producer.http_api import ProducerProcess
from redis.exceptions import OutOfMemoryError, RedisError
from support.redis_cluster import RedisCluster
from support.redis_server import RedisServer

from jobqueue.core.client import JOBS_PER_SCRIPT_CALL, Client, NewJob
from jobqueue.core.connection import REDIS_UNAVAILABLE
from jobqueue.core.errors import EnqueueUnconfirmed
from jobqueue.core.lanes import parse_lanes
from jobqueue.core.settings import QueueSettings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
LANES = "high:8-10,normal:1-7"
JOBQUEUE = str(Path(sys.executable).with_name("jobqueue"))


def _settings(
    cluster: RedisCluster,
    stream: str,
    min_replicas: int,
    *,
    timeout_ms: int = 5000,
    partitions: int = 1,
    lanes: str = "",
) -> QueueSettings:
    return QueueSettings(
        redis_url=cluster.url,
        stream=stream,
        enqueue_min_replicas=min_replicas,
        enqueue_replicas_timeout_ms=timeout_ms,
        partitions=partitions,
        lanes=parse_lanes(lanes) if lanes else QueueSettings().lanes,
    )


@pytest.fixture
def synced(cluster: RedisCluster) -> RedisCluster:
    """The session's cluster once every primary's replica is online: a new cluster's
    replicas sync a few seconds after it is created (diskless sync delay), and a WAIT
    before that waits for them."""
    deadline = time.monotonic() + 30
    for primary in cluster.primaries():
        with cluster.client(primary.port) as node:
            while node.info("replication").get("slave0", {}).get("state") != "online":
                assert time.monotonic() < deadline, "a replica did not sync"
                time.sleep(0.05)
    return cluster


def _ids_on_replicas(cluster: RedisCluster, settings: QueueSettings) -> set[str]:
    """The job ids in every ready stream of every partition, read from the replica of the
    partition's primary (READONLY: a replica answers reads of its own slots)."""
    ids = set()
    for keys in settings.partition_keys:
        replica = cluster.replica_of(cluster.owner(keys.stream))
        with redis.Redis(port=replica.port, decode_responses=True) as node:
            node.execute_command("READONLY")
            for _, stream in settings.lanes.named_streams(keys):
                ids |= {fields["id"] for _, fields in node.xrange(stream)}
    return ids


def test_an_accepted_job_is_on_the_replica_of_its_partition_primary(synced: RedisCluster) -> None:
    cluster = synced
    # Given a queue of 3 partitions (one per primary) with priority lanes, every enqueue
    # waiting for 1 replica
    settings = _settings(cluster, "repl:work", 1, partitions=3, lanes=LANES)
    assert len({cluster.owner(k.stream).port for k in settings.partition_keys}) == 3
    # When a batch spreads over them, one partition's share past one script call (a
    # MULTI/EXEC then the WAIT), high and normal priorities mixed, and a single job follows
    batch = [NewJob("noop", {"n": n}, partition_key="big") for n in range(JOBS_PER_SCRIPT_CALL + 3)]
    batch += [NewJob("noop", {"n": n}, priority=9 if n % 2 else 5) for n in range(12)]
    with Client(settings) as client:
        results = client.enqueue_many(batch)
        single = client.enqueue("noop", {}, priority=10)
    # Then, as soon as answered, the replicas hold every one of them
    assert len(results) == len(batch)
    assert _ids_on_replicas(cluster, settings) == {r.job_id for r in results} | {single.job_id}


def test_fewer_acknowledgements_than_asked_is_unconfirmed_naming_every_job(
    cluster: RedisCluster,
) -> None:
    # Each primary has 1 replica: 2 can never acknowledge
    settings = _settings(cluster, "unconfirmed:work", 2, timeout_ms=100, partitions=3)
    jobs = [NewJob("noop", {"n": n}) for n in range(6)]
    with Client(settings) as client, pytest.raises(EnqueueUnconfirmed, match="1 of 2") as caught:
        client.enqueue_many(jobs)
    # "unknown", never "not written": the primaries have them
    stored = set()
    for keys in settings.partition_keys:
        with cluster.client(cluster.owner(keys.stream).port) as node:
            stored |= {fields["id"] for _, fields in node.xrange(keys.stream)}
    assert set(caught.value.job_ids) == stored
    assert len(caught.value.job_ids) == 6


def test_a_primary_that_lost_the_script_and_a_moved_slot_are_followed_writing_once(
    synced: RedisCluster,
) -> None:
    cluster = synced
    settings = _settings(cluster, "moved:work", 1)
    with Client(settings) as client:
        first = client.enqueue("noop", {})
        # When the primary loses its script cache (a restart): NOSCRIPT, nothing written
        source = cluster.owner(settings.stream)
        with cluster.client(source.port) as node:
            node.script_flush()
        second = client.enqueue("noop", {})
        # and when the queue's slot moves to another primary: MOVED, nothing written
        target = next(node for node in cluster.primaries() if node is not source)
        cluster.migrate_slot(settings.stream, target, batch=10)
        third = client.enqueue("noop", {})
    # Then each enqueue was written once, the last on the new owner, all on its replica
    with cluster.client(target.port) as node:
        ids = [fields["id"] for _, fields in node.xrange(settings.stream)]
    assert ids == [first.job_id, second.job_id, third.job_id]
    assert _ids_on_replicas(cluster, settings) == set(ids)


def test_a_primary_refusing_writes_is_redis_unavailable_with_nothing_written(
    synced: RedisCluster,
) -> None:
    # A batch of two script calls (MULTI/EXEC, then WAIT) meets a full primary
    settings = _settings(synced, "oom:work", 1)
    owner = synced.owner(settings.stream)
    with synced.client(owner.port) as node:
        node.config_set("maxmemory", "1")
        try:
            with Client(settings) as client, pytest.raises(REDIS_UNAVAILABLE) as caught:
                client.enqueue_many([NewJob("noop", {})] * (JOBS_PER_SCRIPT_CALL + 1))
        finally:
            node.config_set("maxmemory", "0")
        assert isinstance(caught.value, OutOfMemoryError)  # the cause, not EXECABORT
        assert node.xlen(settings.stream) == 0


def test_the_cli_and_the_producer_wait_for_the_replica(
    synced: RedisCluster, tmp_path: Path
) -> None:
    cluster = synced
    types = tmp_path / "types.yaml"
    types.write_text("noop: null\n")
    stream = "http:work"
    replica = cluster.replica_of(cluster.owner(stream))
    env = {"REDIS_URL": cluster.url, "JOBQUEUE_STREAM": stream, "PATH": ""}
    env["JOBQUEUE_ENQUEUE_MIN_REPLICAS"] = "1"
    enqueued = subprocess.run(
        [JOBQUEUE, "enqueue", "noop", "{}", "--count", "2"], env=env, capture_output=True, text=True
    )
    assert enqueued.returncode == 0, enqueued.stderr
    with redis.Redis(port=replica.port, decode_responses=True) as node:
        node.execute_command("READONLY")
        assert node.xlen(stream) == 2  # answered, so on the replica already
    producer = ProducerProcess(
        cluster.url,
        JOBQUEUE_JOB_TYPES_FILE=str(types),
        JOBQUEUE_STREAM=stream,
        JOBQUEUE_ENQUEUE_MIN_REPLICAS="1",
        JOBQUEUE_ENQUEUE_REPLICAS_TIMEOUT_MS="200",
    )
    try:
        # With the replica up, 202
        accepted = _post(producer.url)
        assert accepted[0] == 202, producer.output()
        # With the replica paused (SIGSTOP: it cannot acknowledge), 503 naming the job
        assert replica.process is not None
        replica.process.send_signal(signal.SIGSTOP)
        try:
            status, body = _post(producer.url)
        finally:
            replica.process.send_signal(signal.SIGCONT)
        assert status == 503, body
        assert body["error"] == "Enqueue unconfirmed"
        assert body["outcome"] == "unknown"
        assert "0 of 1 replicas" in body["detail"]
        [unconfirmed] = body["jobIds"]
    finally:
        producer.stop()
    with cluster.client(cluster.owner(stream).port) as node:
        ids = [fields["id"] for _, fields in node.xrange(stream)]
    assert ids[2:] == [accepted[1]["jobId"], unconfirmed]


def _post(url: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"{url}/jobs",
        data=json.dumps({"type": "noop", "payload": {}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_wait_cut_short_by_a_failover_is_unconfirmed(synced: RedisCluster) -> None:
    # Given an enqueue blocked in WAIT (2 replicas asked, each primary has 1)
    cluster = synced
    settings = _settings(cluster, "cut:work", 2, timeout_ms=60_000)
    outcome: list[BaseException | str] = []

    def enqueue() -> None:
        with Client(settings) as client:
            try:
                outcome.append(client.enqueue("noop", {}).job_id)
            except BaseException as exc:
                outcome.append(exc)

    thread = threading.Thread(target=enqueue, daemon=True)
    thread.start()
    old = cluster.owner(settings.stream)
    _until(lambda: _blocked_in_wait(cluster, old))
    # When its primary turns replica (Redis answers the WAIT with an error)
    promoted = cluster.failover(old)
    thread.join(30)
    # Then the enqueue is unconfirmed, naming the job the new primary holds
    [unconfirmed] = outcome
    assert isinstance(unconfirmed, EnqueueUnconfirmed), repr(unconfirmed)
    with cluster.client(promoted.port) as node:
        assert [f["id"] for _, f in node.xrange(settings.stream)] == unconfirmed.job_ids


def _blocked_in_wait(cluster: RedisCluster, node: RedisServer) -> bool:
    with cluster.client(node.port) as client:
        return any(c.get("cmd") == "wait" for c in client.client_list())


def test_no_accepted_job_is_lost_when_the_primary_fails_over_under_load(
    synced: RedisCluster,
) -> None:
    cluster = synced
    settings = _settings(cluster, "failover:work", 1)
    accepted: list[str] = []
    refused: list[str] = []
    broken: list[Exception] = []
    stop = threading.Event()

    def load() -> None:
        with Client(settings) as client:
            while not stop.is_set():
                job_id = uuid.uuid4().hex
                try:
                    client.enqueue("noop", {}, job_id=job_id)
                    accepted.append(job_id)
                except (EnqueueUnconfirmed, RedisError):
                    refused.append(job_id)
                except Exception as exc:  # a bug: say it, not "the load did not progress"
                    broken.append(exc)
                    raise

    old = cluster.owner(settings.stream)
    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        _until(lambda: len(accepted) >= 100 or bool(broken))
        promoted = cluster.failover(old)
        mark = len(accepted)
        _until(lambda: len(accepted) >= mark + 100 or bool(broken))
    finally:
        stop.set()
        thread.join(30)
    assert not broken, repr(broken)
    assert cluster.owner(settings.stream) is promoted
    with cluster.client(promoted.port) as node:
        stored = {fields["id"] for _, fields in node.xrange(settings.stream)}
    assert set(accepted) <= stored, f"{len(set(accepted) - stored)} accepted jobs lost"


def _until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the load did not progress"
        time.sleep(0.05)
