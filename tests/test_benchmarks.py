"""Every benchmark still runs end to end (tiny sizes) and prints its figures.

Nothing here asserts a speed: the figures depend on the machine and its load. The
point is that `bench/` does not rot as the code it measures changes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("worker_throughput.py", ["--jobs", "300", "--rounds", "1"], "ratio worker/raw"),
        (
            "worker_throughput.py",
            ["--jobs", "300", "--rounds", "1", "--concurrency-limit", "64"],
            "noop limited to 64",
        ),
        ("redis_cost.py", ["--jobs", "300", "--rounds", "1"], "ratio jobqueue/raw"),
        ("enqueue_script_cost.py", ["--jobs", "300", "--rounds", "1"], "ENQUEUE (shipped)"),
        ("hot_path_round_trip.py", ["--calls", "20", "--rounds", "1"], "hot connection"),
        ("worker_inprocess.py", ["--batches", "20", "--rounds", "1"], "worker path per job"),
        ("startup.py", ["--rounds", "1"], "jobqueue producer"),
        ("latency.py", ["--seconds", "0.5", "--loads", "10", "--stages"], "loop stalls"),
        (
            "producer_throughput.py",
            ["--jobs", "200", "--batch", "50", "--requests", "20", "--rounds", "1"],
            "/jobs/batch",
        ),
        ("producer_http.py", ["--seconds", "1", "--rounds", "1"], "ratio producer/bare"),
        (
            "chaos.py",
            [
                *("--jobs", "200", "--fault-phase-s", "2", "--sigkills", "1"),
                *("--sigterms", "0", "--client-kills", "1", "--redis-restarts", "0"),
                *("--long-jobs", "1", "--long-job-ms", "500", "--poison-jobs", "0"),
                *("--visibility-timeout-s", "4"),
            ],
            "guarantees held",
        ),
        (
            "operator_scaling.py",
            ["--trials", "1", "--queues", "2", "--seconds", "2"],
            "per JobQueue per poll",
        ),
        (
            "priority_lanes.py",
            ["--backlog", "2000", "--high", "10", "--weighted-backlog", "600"],
            "weighted high:6,normal:3,low:1",
        ),
        ("faults.py", ["--scale", "0.05", "--rate", "50", "--only", "freeze,maxmemory"], "resumed"),
        (
            "cluster_scaleout.py",
            ["--jobs", "200", "--rounds", "1"],
            "primaries for 1 M jobs/s",
        ),
        (
            "sentinel_failover.py",
            # two posters, not eight: posting goes on at full speed through the
            # failover, and the figures are not the point here
            [
                *("--rounds", "1", "--before", "30", "--after", "30", "--modes", "plain"),
                *("--posters", "2"),
            ],
            "producer resume",
        ),
        (
            "cluster_failover.py",
            # plain only: with the option, resuming waits for the killed node to be back
            # as a replica (~9 s); tests/cluster asserts that mode
            [*("--rounds", "1", "--before", "30", "--after", "30", "--modes", "plain")],
            "lost over 1 rounds",
        ),
    ],
)
def test_benchmark_runs_and_prints_its_figures(script: str, args: list[str], expected: str) -> None:
    if script == "producer_http.py" and shutil.which("wrk") is None:
        pytest.skip("needs wrk (apt install wrk)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]  # chaos: on stdout
    assert expected in done.stdout, done.stdout
