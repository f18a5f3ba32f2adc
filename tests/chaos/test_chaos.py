"""The short chaos run (CI): real workers, real Redis, faults on a schedule.

`support.chaos` does the run: SIGKILLs and SIGTERMs of workers (restarted under the same
name), CLIENT KILL of their connections, a Redis restart with AOF, long jobs that
outlive the visibility timeout and poison jobs that kill their worker. The second run does
the same to a queue with priority lanes and partitions (a lane stream per lane in each
partition, one engine per partition in every worker). ``bench/chaos.py`` is the long run
(50,000+ jobs) on demand.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.chaos import ChaosPlan, ChaosRun
from support.redis_server import RedisServer

pytestmark = pytest.mark.slow


@pytest.mark.timeout(110)
def test_a_short_chaos_run_loses_nothing_and_blames_only_poison(tmp_path: Path) -> None:
    # given three workers, 3,000 valid jobs, 4 long ones and 2 poison ones
    plan = ChaosPlan()
    server = RedisServer(tmp_path / "redis", appendonly=True)
    # when workers are killed, stopped, cut off and Redis restarted while they run
    report = ChaosRun(plan, server, tmp_path).run()
    print(report.summary())
    # then every guarantee held
    assert sum(report.faults.values()) == 8, report.faults
    assert report.faults.get("sigkill", 0) >= 3, report.faults
    assert report.failures() == [], report.summary()
    assert report.succeeded == plan.valid_jobs + plan.long_jobs


@pytest.mark.timeout(110)
def test_a_short_chaos_run_over_lanes_and_partitions_keeps_the_same_guarantees(
    tmp_path: Path,
) -> None:
    # given three lanes in each of two partitions, 2,000 valid jobs at every priority,
    # long and poison jobs in the non-default lanes too
    plan = ChaosPlan(valid_jobs=2000, lanes="high:8-10,normal:4-7,low:1-3", partitions=2)
    server = RedisServer(tmp_path / "redis", appendonly=True)
    # when workers are killed, stopped, cut off and Redis restarted while they run
    report = ChaosRun(plan, server, tmp_path).run()
    print(report.summary())
    # then every one of the six streams got jobs, and every guarantee held
    assert len(report.spread) == 6, report.spread
    poisoned = [stream for stream, kinds in report.spread.items() if kinds.get("poison")]
    assert all(":lane:" in stream for stream in poisoned), report.spread
    assert report.faults.get("sigkill", 0) >= 3, report.faults
    assert report.failures() == [], report.summary()
    assert report.succeeded == plan.valid_jobs + plan.long_jobs
