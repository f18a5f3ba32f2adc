"""The JobQueue YAML as local mode reads it: the operator's spec turned into worker flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobqueue.core.errors import ConfigError
from jobqueue.core.keys import partition_streams
from jobqueue.local.queue import load_queue

QUEUE_YAML = """
apiVersion: jobqueue.dev/v1alpha1
kind: JobQueue
metadata:
  name: orders
spec:
  stream: orders:work
  group: order-workers
  deadLetterStream: orders:dead
  jobTimeoutSeconds: 12.5
  visibilityTimeoutSeconds: 20
  maxDeliveries: 4
  retry:
    maxAttempts: 7
    backoff: {baseSeconds: 0.5, capSeconds: 9}
  worker:
    image: example/orders:1
    app: orders.jobs:app
    concurrency: 3
    env:
      - name: GREETING
        value: hello
      - name: API_KEY
        valueFrom:
          secretKeyRef: {name: orders, key: api-key}
  scaling:
    minReplicas: 1
    maxReplicas: 6
    pollIntervalSeconds: 0.5
"""


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_a_partitioned_queue_gives_its_processes_the_count_and_no_shared_dead_stream(
    tmp_path: Path,
) -> None:
    path = tmp_path / "parts.yaml"
    text = QUEUE_YAML.replace("  deadLetterStream: orders:dead\n", "  partitions: 4\n")
    path.write_text(text)

    queue = load_queue(path)
    argv = queue.worker_argv(["jobqueue"], "orders-w1", 0)

    assert flag(argv, "--partitions") == "4"
    # each partition keeps its own dead letters: naming one stream would share it
    assert "--dead-stream" not in argv
    assert [k.stream for k in queue.partition_keys] == partition_streams("orders:work", 4)
    assert queue.settings("redis://x").partitions == 4


def test_without_a_file_the_built_in_demo_queue_runs_the_demo_app() -> None:
    queue = load_queue(None)

    assert queue.source == "built-in demo"
    assert queue.spec.worker.app == "jobqueue.worker.demo:app"
    assert queue.min_replicas == 0
    assert queue.max_replicas >= 2


def test_a_jobqueue_file_becomes_the_worker_command_line(tmp_path: Path) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text(QUEUE_YAML)

    queue = load_queue(path)
    argv = queue.worker_argv(["jobqueue"], "orders-w1", 0)

    assert queue.name == "orders"
    assert argv[:3] == ["jobqueue", "worker", "orders.jobs:app"]
    assert "--redis-url" not in argv  # it goes by REDIS_URL: no password in `ps`
    assert flag(argv, "--stream") == "orders:work"
    assert flag(argv, "--group") == "order-workers"
    assert flag(argv, "--dead-stream") == "orders:dead"
    assert flag(argv, "--concurrency") == "3"
    assert flag(argv, "--job-timeout-s") == "12.5"
    assert flag(argv, "--visibility-timeout-s") == "20"
    assert flag(argv, "--max-deliveries") == "4"
    assert flag(argv, "--max-attempts") == "7"
    assert flag(argv, "--consumer") == "orders-w1"
    assert flag(argv, "--http-port") == "0"
    # The grace period is the spec's: at least the job timeout plus the operator's margin.
    assert float(flag(argv, "--grace-period-s")) == queue.spec.grace_period_s
    assert queue.poll_interval_s == 0.5
    assert (queue.min_replicas, queue.max_replicas) == (1, 6)


def test_plain_env_values_are_passed_and_secret_refs_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text(QUEUE_YAML)

    queue = load_queue(path)

    env = queue.worker_env()

    assert env["GREETING"] == "hello"
    assert "API_KEY" not in env
    assert (env["JOBQUEUE_BACKOFF_BASE_S"], env["JOBQUEUE_BACKOFF_CAP_S"]) == ("0.5", "9")
    assert any("API_KEY" in note and "valueFrom" in note for note in queue.warnings())


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*nope\.yaml"):
        load_queue(tmp_path / "nope.yaml")


def test_an_invalid_spec_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(QUEUE_YAML.replace("maxReplicas: 6", "maxReplicas: 6\n    maxReplica: 3"))

    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid JobQueue: .*maxReplica"):
        load_queue(path)


def test_limits_are_passed_to_the_worker_processes(tmp_path: Path) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text(
        QUEUE_YAML
        + "  limits: [{type: email, rate: {jobs: 5, periodSeconds: 0.5}, concurrency: 2}]\n"
    )
    env = load_queue(path).worker_env()
    assert env["JOBQUEUE_RATE_LIMITS"] == "email=5/500ms"
    assert env["JOBQUEUE_CONCURRENCY_LIMITS"] == "email=2"
