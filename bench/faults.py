"""Redis faults, long runs: the seven scenarios of issue 15 against real workers.

Each scenario starts its own redis-server (AOF, fsync always) and two ``jobqueue
worker`` processes, enqueues jobs at a steady rate (each sleeps, then writes to Redis
with ``HINCRBY``), and makes Redis unwell in the middle (`tests/support/faults.py`):

- freeze 20 s and 45 s (``SIGSTOP`` / ``SIGCONT``);
- ``CLIENT PAUSE`` 15 s;
- down 30 s (stopped, started again on its AOF);
- ``maxmemory`` 15 s (``noeviction``: every write that may grow memory refused);
- an emptied Redis (restarted without its data);
- latency spikes: ``DEBUG SLEEP 2`` every 3 s for 30 s.

    .venv/bin/python bench/faults.py [--scale 1.0] [--rate 200] [--only freeze,down]

``--scale`` multiplies every fault's duration (the test of this script runs it at a
tiny scale). Prints one line per scenario: jobs accepted and succeeded, valid jobs
dead-lettered, lost, left pending or delayed, duplicates (a handler's write that timed
out during a freeze and landed later, then ran again), attempts held (not counted
because Redis failed them), jobs retried (a counted attempt), worker exits, and how
long after the fault's end a new job was done. Exits 1 if a guarantee broke.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.faults import Fault, FaultRun  # noqa: E402

SCENARIOS: list[tuple[str, float]] = [
    ("freeze", 20.0),
    ("freeze", 45.0),
    ("pause", 15.0),
    ("down", 30.0),
    ("maxmemory", 15.0),
    ("emptied", 0.0),
    ("latency", 30.0),
]
RESUME_WITHIN_S = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fault durations x this")
    parser.add_argument("--rate", type=float, default=200.0, help="jobs enqueued per second")
    parser.add_argument("--job-ms", type=int, default=100, help="how long each job runs")
    parser.add_argument("--only", default="", help="comma-separated kinds to run")
    args = parser.parse_args()
    only = {kind for kind in args.only.split(",") if kind}
    broken = 0
    print(f"rate {args.rate:g} jobs/s, jobs of {args.job_ms} ms, 2 workers x 16 slots")
    for kind, duration_s in SCENARIOS:
        if only and kind not in only:
            continue
        fault = Fault(
            kind,
            duration_s=max(1.0, duration_s * args.scale) if duration_s else 0.0,
            rate=args.rate,
            job_ms=args.job_ms,
            before_s=max(1.0, 5.0 * args.scale),
            after_s=max(1.0, 5.0 * args.scale),
            settle_timeout_s=120.0,
        )
        with tempfile.TemporaryDirectory(prefix="jobqueue-faults-") as directory:
            report = FaultRun(fault, Path(directory)).run()
        problems = report.failures(RESUME_WITHIN_S)
        print(report.summary() + ("" if not problems else f"  BROKEN: {problems}"), flush=True)
        broken += bool(problems)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
