"""Every entry point takes a ``redis+cluster://`` URL: the CLI, the producer over HTTP
and local mode (its operator sampling the backlog and its workers draining it)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from local.dev_process import DevProcess
from producer.http_api import ProducerProcess
from redis.cluster import RedisCluster as SyncCluster
from support.redis_cluster import RedisCluster

from jobqueue.core.client import Client, NewJob
from jobqueue.core.keys import QueueKeys

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
JOBQUEUE = str(Path(sys.executable).with_name("jobqueue"))
KEYS = QueueKeys()
DONE = "{cluster-entry}:done"
QUEUE_YAML = """
apiVersion: jobqueue.dev/v1alpha1
kind: JobQueue
metadata: {name: t}
spec:
  partitions: 3
  worker: {image: unused-locally, app: "jobqueue.worker.testing:app", concurrency: 4}
  scaling: {minReplicas: 0, maxReplicas: 2, idleSecondsBeforeZero: 1, pollIntervalSeconds: 0.3,
            scaleDownStabilizationSeconds: 1}
"""


@pytest.fixture
def reader(cluster: RedisCluster) -> Iterator[SyncCluster]:
    client = SyncCluster(host="127.0.0.1", port=cluster.nodes[0].port, decode_responses=True)
    yield client
    client.close()


def test_the_cli_enqueues_and_reads_stats_on_a_cluster(
    cluster: RedisCluster, reader: SyncCluster
) -> None:
    env = {"REDIS_URL": cluster.url, "PATH": ""}
    enqueued = subprocess.run(
        [JOBQUEUE, "enqueue", "noop", "{}", "--count", "7"], env=env, capture_output=True, text=True
    )
    assert enqueued.returncode == 0, enqueued.stderr
    stats = subprocess.run([JOBQUEUE, "stats", "--json"], env=env, capture_output=True, text=True)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["length"] == 7
    assert reader.xlen(KEYS.stream) == 7


def test_the_producer_enqueues_on_a_cluster(
    cluster: RedisCluster, reader: SyncCluster, tmp_path: Path
) -> None:
    types = tmp_path / "types.yaml"
    types.write_text("noop: null\n")
    producer = ProducerProcess(cluster.url, JOBQUEUE_JOB_TYPES_FILE=str(types))
    try:
        request = urllib.request.Request(
            f"{producer.url}/jobs",
            data=json.dumps({"type": "noop", "payload": {}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202, producer.output()
            job_id = json.loads(response.read())["jobId"]
        with urllib.request.urlopen(f"{producer.url}/jobs/{job_id}", timeout=10) as response:
            assert json.loads(response.read())["state"] == "queued"
        with urllib.request.urlopen(f"{producer.url}/readyz", timeout=10) as response:
            assert response.status == 200
    finally:
        producer.stop()
    [(_, fields)] = reader.xrange(KEYS.stream)
    assert fields["id"] == job_id


def test_local_mode_runs_a_partitioned_queue_on_a_cluster(
    cluster: RedisCluster, reader: SyncCluster, tmp_path: Path
) -> None:
    queue = tmp_path / "queue.yaml"
    queue.write_text(QUEUE_YAML)
    with Client.from_url(cluster.url, partitions=3) as client:
        ids = [r.job_id for r in client.enqueue_many([NewJob("record", {"into": DONE})] * 30)]
        # A partitioned queue: its jobs went to every partition, one on each primary
        spread = [s.length for s in client.partition_stats()]
        assert min(spread) > 0
        assert sum(spread) == 30
    env = {"REDIS_URL": cluster.url, "PYTHONUNBUFFERED": "1"}
    dev = DevProcess(["-f", str(queue), "--port", "0", "--exit-when-idle"], env)
    try:
        assert dev.wait_exit() == 0, dev.output
    finally:
        dev.stop()
    assert sorted(reader.hgetall(DONE)) == sorted(ids), dev.output
