"""``jobqueue enqueue`` with bad ``--partition-key`` and ``--priority`` values on a queue
with lanes and partitions: one clear error line, a non-zero exit, no traceback, and
nothing enqueued."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from jobqueue.cli.main import cli
from jobqueue.core.lanes import parse_lanes
from jobqueue.core.settings import QueueSettings

JOBQUEUE = Path(sys.executable).with_name("jobqueue")
LANES = "high:8-10,normal:4-7,low:1-3"
QUEUE = QueueSettings(partitions=3, lanes=parse_lanes(LANES))


def _queued(sync_redis: redis.Redis) -> int:
    return sum(
        sync_redis.xlen(stream)
        for keys in QUEUE.partition_keys
        for stream in QUEUE.lanes.streams(keys)
    )


BAD_FLAGS = {
    "priority 0": (["--priority", "0"], "--priority"),
    "priority 11": (["--priority", "11"], "--priority"),
    "priority abc": (["--priority", "abc"], "--priority"),
    "priority 5.0": (["--priority", "5.0"], "--priority"),
    "priority empty": (["--priority", ""], "--priority"),
    "partition key empty": (["--partition-key", ""], "partition_key"),
    "partition key too long": (["--partition-key", "k" * 201], "partition_key"),
    "partition key not UTF-8": (["--partition-key", "caf\udce9"], "partition_key"),
}


@pytest.mark.parametrize(("flags", "named"), BAD_FLAGS.values(), ids=BAD_FLAGS.keys())
def test_a_bad_partition_key_or_priority_is_one_line_and_exits_non_zero(
    redis_url: str, sync_redis: redis.Redis, flags: list[str], named: str
) -> None:
    env = {"REDIS_URL": redis_url, "JOBQUEUE_LANES": LANES, "JOBQUEUE_PARTITIONS": "3"}

    result = CliRunner().invoke(cli, ["enqueue", "noop", "{}", *flags], env=env)

    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    [error] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert named in error
    assert "Traceback" not in result.output
    assert _queued(sync_redis) == 0


def test_partition_key_bytes_from_a_real_command_line_are_refused_cleanly(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, "JOBQUEUE_LANES": LANES,
           "JOBQUEUE_PARTITIONS": "3"}  # fmt: skip

    done = subprocess.run(
        [os.fsencode(JOBQUEUE), b"enqueue", b"noop", b"{}", b"--partition-key", b"\xff\xfe"],
        env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2, done
    assert b"Traceback" not in done.stderr
    assert b"Error: Invalid value for job: 'partition_key'" in done.stderr
    assert _queued(sync_redis) == 0
