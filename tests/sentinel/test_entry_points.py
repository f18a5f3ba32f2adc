"""Every entry point takes a ``redis+sentinel://`` URL: the CLI, the Python client and
local mode (worker, producer and operator are covered by the failover tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from local.dev_process import DevProcess
from support.sentinel_setup import SentinelSetup

from jobqueue.core.client import Client, NewJob
from jobqueue.core.keys import QueueKeys

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
JOBQUEUE = str(Path(sys.executable).with_name("jobqueue"))
KEYS = QueueKeys()
QUEUE_YAML = """
apiVersion: jobqueue.dev/v1alpha1
kind: JobQueue
metadata: {name: t}
spec:
  worker: {image: unused-locally, app: "jobqueue.worker.testing:app", concurrency: 4}
  scaling: {minReplicas: 0, maxReplicas: 2, idleSecondsBeforeZero: 1, pollIntervalSeconds: 0.3,
            scaleDownStabilizationSeconds: 1}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSetup]:
    sentinels = SentinelSetup(tmp_path_factory.mktemp("sentinel"))
    sentinels.start()
    yield sentinels
    sentinels.stop()


@pytest.fixture
def master(setup: SentinelSetup) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(setup.master_url(), decode_responses=True)
    client.flushall()
    yield client
    client.close()


def test_the_cli_enqueues_and_reads_stats_through_the_sentinels(
    setup: SentinelSetup, master: redis.Redis
) -> None:
    env = {"REDIS_URL": setup.url, "PATH": ""}
    enqueued = subprocess.run(
        [JOBQUEUE, "enqueue", "noop", "{}", "--count", "7"], env=env, capture_output=True, text=True
    )
    assert enqueued.returncode == 0, enqueued.stderr
    stats = subprocess.run([JOBQUEUE, "stats", "--json"], env=env, capture_output=True, text=True)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["length"] == 7
    assert master.xlen(KEYS.stream) == 7


def test_the_python_client_takes_the_url(setup: SentinelSetup, master: redis.Redis) -> None:
    with Client.from_url(setup.url) as client:
        job = client.enqueue("noop", {})
        assert client.ping()
    [(entry_id, fields)] = master.xrange(KEYS.stream)
    assert (entry_id, fields["id"]) == (job.entry_id, job.job_id)


def test_local_mode_runs_a_queue_behind_sentinel(
    setup: SentinelSetup, master: redis.Redis, tmp_path: Path
) -> None:
    queue = tmp_path / "queue.yaml"
    queue.write_text(QUEUE_YAML)
    with Client.from_url(setup.url) as client:
        ids = [r.job_id for r in client.enqueue_many([NewJob("record", {"into": "done"})] * 20)]
    env = {"REDIS_URL": setup.url, "PYTHONUNBUFFERED": "1"}
    dev = DevProcess(["-f", str(queue), "--port", "0", "--exit-when-idle"], env)
    try:
        assert dev.wait_exit() == 0, dev.output
    finally:
        dev.stop()
    assert sorted(master.hgetall("done")) == sorted(ids), dev.output
