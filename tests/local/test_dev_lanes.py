"""Local mode on a JobQueue with priority lanes: its processes get the lanes (and how to
serve them: strict or weighted), it scales on every lane's backlog together, and the
client commands find the lanes of a running dev."""

from __future__ import annotations

import os
from pathlib import Path

import redis
from click.testing import CliRunner
from local.dev_process import DevProcess
from local.test_dev import QUEUE_YAML

from jobqueue.cli.main import cli
from jobqueue.core.client import Client, NewJob
from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import parse_lanes
from jobqueue.core.settings import QueueSettings
from jobqueue.local.queue import load_queue

KEYS = QueueKeys()
LANES_YAML = (
    QUEUE_YAML
    + """  lanes:
    - {name: high, priorities: "8-10"}
    - {name: normal, priorities: "4-7"}
    - {name: low, priorities: "1-3"}
"""
)


# Two lanes served 2:1 by one worker of one slot; the low lane holds priority 5, so its
# stream is the queue's own.
WEIGHTED_YAML = (
    QUEUE_YAML.replace("concurrency: 2", "concurrency: 1").replace(
        "maxReplicas: 3", "maxReplicas: 1"
    )
    + """  lanes:
    - {name: high, priorities: "6-10", weight: 2}
    - {name: low, priorities: "1-5", weight: 1}
"""
)


def lanes_file(tmp_path: Path) -> Path:
    path = tmp_path / "lanes.yaml"
    path.write_text(LANES_YAML)
    return path


def test_the_workers_and_the_producer_get_the_spec_lanes(tmp_path: Path) -> None:
    queue = load_queue(lanes_file(tmp_path))
    plain = tmp_path / "plain.yaml"
    plain.write_text(QUEUE_YAML)

    assert queue.worker_env()["JOBQUEUE_LANES"] == "high:8-10,normal:4-7,low:1-3"
    assert queue.queue_env() == {"JOBQUEUE_LANES": "high:8-10,normal:4-7,low:1-3"}
    # Without lanes the variable is set empty: a JOBQUEUE_LANES of the shell is no lane table
    assert load_queue(plain).worker_env()["JOBQUEUE_LANES"] == ""


def test_the_workers_get_the_lane_mode_and_weights_of_the_spec(tmp_path: Path) -> None:
    weighted = tmp_path / "weighted.yaml"
    # a worker.env entry naming a lane variable does not override the spec (as on
    # Kubernetes, where the operator drops it)
    weighted.write_text(
        WEIGHTED_YAML.replace(
            "    concurrency: 1",
            "    concurrency: 1\n    env: [{name: JOBQUEUE_LANE_MODE, value: strict}]",
        )
    )

    env = load_queue(weighted).worker_env()
    strict = load_queue(lanes_file(tmp_path)).worker_env()

    assert (env["JOBQUEUE_LANE_MODE"], env["JOBQUEUE_LANE_WEIGHTS"]) == ("weighted", "high:2,low:1")
    assert (strict["JOBQUEUE_LANE_MODE"], strict["JOBQUEUE_LANE_WEIGHTS"]) == ("strict", "")
    # the producer has no use for them
    assert set(load_queue(weighted).queue_env()) == {"JOBQUEUE_LANES"}


def test_dev_with_weighted_lanes_starts_low_jobs_while_high_is_backlogged(
    tmp_path: Path, redis_url: str, start_dev
) -> None:
    path = tmp_path / "weighted.yaml"
    path.write_text(WEIGHTED_YAML)
    dev: DevProcess = start_dev("-f", str(path), "--port", "0", redis_url=redis_url)
    dev.wait_for_line(r"replicas=0/0")
    lanes = parse_lanes("high:6-10,low:1-5")

    # Given 12 high jobs and then 3 low ones, waiting for the queue's only worker slot
    with Client(QueueSettings(redis_url=redis_url, lanes=lanes)) as client:
        high = [NewJob("sleep", {"ms": 20}, priority=9) for _ in range(12)]
        low = [NewJob("sleep", {"ms": 20}, priority=1) for _ in range(3)]
        ids = [enqueued.job_id for enqueued in client.enqueue_many([*high, *low])]

        def all_done() -> bool:
            return all(info and info.state == "succeeded" for info in map(client.get, ids))

        dev.wait_until(all_done, timeout_s=30)
        starts = [str(info.started_at) for info in map(client.get, ids) if info]

    # Then every low job started before the high lane was drained (strict order would
    # start them after the last high one)
    last_high = max(starts[:12])
    assert all(start < last_high for start in starts[12:]), starts


def test_dev_scales_on_the_sum_of_the_lanes_and_the_cli_routes_by_them(
    tmp_path: Path, redis_url: str, sync_redis: redis.Redis, start_dev
) -> None:
    dev: DevProcess = start_dev("-f", str(lanes_file(tmp_path)), "--port", "0", redis_url=redis_url)
    dev.wait_for_line(r"replicas=0/0")  # given an idle queue scaled to zero

    # When a client command that names no Redis enqueues (it follows the running dev's
    # state, lanes included), 4 jobs in the high lane and 4 in the low one
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "JOBQUEUE_"))}
    env["JOBQUEUE_DEV_STATE_FILE"] = os.environ["JOBQUEUE_DEV_STATE_FILE"]
    runner = CliRunner()
    for priority in ("9", "1"):
        args = ["enqueue", "sleep", '{"ms": 3000}', "--priority", priority, "--count", "4"]
        result = runner.invoke(cli, args, env=env)
        assert result.exit_code == 0, result.output

    # Then they are in their lanes' streams, and 8 jobs at 5 a replica ask for 2 workers,
    # which neither lane's 4 would
    assert (sync_redis.xlen(KEYS.lane("high")), sync_redis.xlen(KEYS.lane("low"))) == (4, 4)
    assert sync_redis.xlen(KEYS.stream) == 0
    dev.wait_until(lambda: dev.max_replicas_seen() >= 2, timeout_s=30)


def test_dev_with_lanes_runs_the_jobs_of_every_lane(
    tmp_path: Path, redis_url: str, sync_redis: redis.Redis, start_dev
) -> None:
    dev: DevProcess = start_dev(
        "-f", str(lanes_file(tmp_path)), "--port", "0", "--exit-when-idle", redis_url=redis_url
    )
    dev.wait_for_line(r"replicas=0/0")
    lanes = parse_lanes("high:8-10,normal:4-7,low:1-3")

    with Client(QueueSettings(redis_url=redis_url, lanes=lanes)) as client:
        jobs = [NewJob("record", {"into": "done"}, priority=p) for p in (10, 9, 5, 2, 1) * 4]
        ids = [enqueued.job_id for enqueued in client.enqueue_many(jobs)]
        assert dev.wait_exit() == 0, dev.output
        infos = [client.get(job_id) for job_id in ids]
    assert {info.state if info else None for info in infos} == {"succeeded"}

    assert set(sync_redis.hgetall("done")) == set(ids)
    assert sync_redis.xlen(KEYS.dead) == 0
