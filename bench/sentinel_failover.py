"""Sentinel failover under load: jobs lost, duplicates and time to resume, per mode.

Each round is tests/support/failover_drill.py at a larger size: a primary, its
replica(s) and three redis-sentinel processes on free loopback ports
(down-after-milliseconds 1000, failover-timeout 3000), one ``jobqueue producer`` and one
``jobqueue worker`` given the ``redis+sentinel://`` URL, ``--posters`` concurrent HTTP
callers posting ``record`` jobs; after ``--before`` accepted jobs the primary is
SIGKILLed, restarted once the sentinels promoted a replica (it rejoins as a replica),
and posting goes on until ``--after`` more were accepted. Then the worker drains and
the new master is read. Modes, alternating per round:

- ``plain``: ``JOBQUEUE_ENQUEUE_MIN_REPLICAS=0`` (the default);
- ``wait``: ``JOBQUEUE_ENQUEUE_MIN_REPLICAS=1`` (timeout 500 ms), one replica;
- ``wait+2``: the same with two replicas, so one is left to acknowledge after the failover.

Printed per round and as medians: jobs accepted per second before the kill (what waiting
for a replica costs), accepted jobs, jobs lost (accepted, never run),
duplicate runs, unconfirmed answers (503 with jobIds), 503 "Redis unavailable" answers,
failover time (kill -> every sentinel names the new master), producer resume (kill ->
first 202 of a request sent after it) and worker resume (kill -> first finish of a job
accepted after it). Nothing here is a pass/fail: tests/sentinel asserts the guarantees.

    .venv/bin/python bench/sentinel_failover.py [--rounds 3] [--before 2000] [--after 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.failover_drill import DrillResult, run_drill  # noqa: E402

MODES = {"plain": (0, 1), "wait": (1, 1), "wait+2": (1, 2)}
"""mode -> (JOBQUEUE_ENQUEUE_MIN_REPLICAS, replicas)."""


def row(mode: str, r: DrillResult) -> str:
    return (
        f"{mode:7} {r.accept_rate_per_s:6.0f} {len(r.accepted):8d} {len(r.lost):5d} "
        f"{r.duplicates:5d} {len(r.unconfirmed):11d} {r.unavailable:11d} {r.failover_s:9.2f} "
        f"{r.producer_resume_s:15.2f} {r.worker_resume_s:13.2f}"
    )


HEADER = (
    "mode    jobs/s accepted  lost  dups unconfirmed unavailable failover_s "
    "producer_resume_s worker_resume_s"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=int, default=2000, help="jobs accepted before the kill")
    parser.add_argument("--after", type=int, default=2000, help="jobs accepted after it")
    parser.add_argument("--posters", type=int, default=8, help="concurrent HTTP callers")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes")
    args = parser.parse_args()
    modes = args.modes.split(",")
    results: dict[str, list[DrillResult]] = {mode: [] for mode in modes}
    print(HEADER, flush=True)
    for _ in range(args.rounds):
        for mode in modes:
            min_replicas, replicas = MODES[mode]
            with tempfile.TemporaryDirectory(prefix="jq-failover-") as directory:
                result = run_drill(
                    Path(directory),
                    min_replicas=min_replicas,
                    replicas=replicas,
                    before=args.before,
                    after=args.after,
                    posters=args.posters,
                )
            results[mode].append(result)
            print(row(mode, result), flush=True)
    print("\nmedians over rounds (lost and duplicates: totals)")
    for mode, runs in results.items():
        print(
            f"{mode:7} {statistics.median(r.accept_rate_per_s for r in runs):.0f} jobs/s, "
            f"lost {sum(len(r.lost) for r in runs)} of "
            f"{sum(len(r.accepted) for r in runs)} accepted, "
            f"duplicates {sum(r.duplicates for r in runs)}, "
            f"failover {statistics.median(r.failover_s for r in runs):.2f} s, "
            f"producer resume {statistics.median(r.producer_resume_s for r in runs):.2f} s, "
            f"worker resume {statistics.median(r.worker_resume_s for r in runs):.2f} s"
        )


if __name__ == "__main__":
    main()
