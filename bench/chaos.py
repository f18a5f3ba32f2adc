"""The long chaos run, on demand: 50,000+ jobs through real workers under faults.

The same harness as the CI run (``tests/support/chaos.py``), bigger: three ``jobqueue
worker`` processes on a private redis-server with AOF, valid ``record`` jobs at a steady
rate, long ``sleep`` jobs that outlive the visibility timeout, poison ``crash`` jobs, and
SIGKILL storms, SIGTERMs, ``CLIENT KILL`` of the workers' connections and Redis restarts
spread over the fault phase. Prints what the run found (lost, stuck, valid jobs
dead-lettered, poison jobs dead-lettered, duplicates and their bound, long jobs stolen)
and exits 1 if a guarantee broke.

    .venv/bin/python bench/chaos.py [--jobs 50000] [--fault-phase-s 90] [--sigkills 20] ...
    .venv/bin/python bench/chaos.py --lanes high:8-10,normal:4-7,low:1-3 [--partitions 3]
    .venv/bin/python bench/chaos.py --reclaim-latency [--visibility-timeout-s 30]

``--lanes`` and ``--partitions`` run the workers on a queue with priority lanes
(JOBQUEUE_LANES) and/or partitions (JOBQUEUE_PARTITIONS, one engine per partition in
each worker): jobs then go through the client's routing (valid jobs at every priority,
long and poison jobs in the non-default lanes first) and the counts cover every lane
stream, delayed set and dead-letter stream of every partition.

``--reclaim-latency`` measures instead how long after a SIGKILL another worker takes the
dead worker's jobs over, killing it right after a heartbeat refreshed its claims (the
worst case: the entries then need the whole visibility timeout to go idle).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.chaos import KEYS, ChaosPlan, ChaosRun  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402
from support.worker_process import WorkerProcess  # noqa: E402

from jobqueue.core.wire import new_job_id  # noqa: E402


def chaos(args: argparse.Namespace, tmp: Path) -> int:
    plan = ChaosPlan(
        workers=args.workers,
        valid_jobs=args.jobs,
        long_jobs=args.long_jobs,
        long_job_ms=args.long_job_ms,
        poison_jobs=args.poison_jobs,
        fault_phase_s=args.fault_phase_s,
        sigkills=args.sigkills,
        sigterms=args.sigterms,
        client_kills=args.client_kills,
        redis_restarts=args.redis_restarts,
        visibility_timeout_s=args.visibility_timeout_s,
        grace_period_s=args.grace_period_s,
        concurrency=args.concurrency,
        settle_timeout_s=args.settle_timeout_s,
        seed=args.seed,
        lanes=args.lanes,
        partitions=args.partitions,
    )
    print(plan)
    report = ChaosRun(plan, RedisServer(tmp / "redis", appendonly=True), tmp).run()
    print(report.summary())
    kinds: dict[str, int] = {}
    for death in report.deaths:
        kinds[death.kind] = kinds.get(death.kind, 0) + 1
    print(f"worker deaths       {kinds}")
    for reason in report.valid_dead[:10]:
        print(f"  valid dead letter: {reason}")
    failures = report.failures()
    print("guarantees held" if not failures else f"BROKEN: {failures}")
    return 1 if failures else 0


def reclaim_latency(visibility_timeout_s: float, tmp: Path) -> int:
    """Seconds from a SIGKILL (right after a heartbeat) to the take-over of its jobs."""
    server = RedisServer(tmp / "redis")
    server.start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    args = ("--visibility-timeout-s", str(visibility_timeout_s))
    victim = WorkerProcess(server.url, "victim", *args, log_dir=tmp)
    heir = WorkerProcess(server.url, "heir", *args, log_dir=tmp)
    try:
        payload = orjson.dumps({"until": "never"}).decode()
        for _ in range(10):
            fields = {"id": new_job_id(), "type": "hold", "payload": payload, "attempts": "0"}
            client.xadd(KEYS.stream, fields)  # type: ignore[arg-type]
        victim.start().wait_ready()
        while int(client.xpending(KEYS.stream, KEYS.group)["pending"]) < 10:
            time.sleep(0.01)
        heir.start().wait_ready()
        # Wait for a heartbeat (the claims' idle time drops), then kill at once.
        last = _max_idle_ms(client)
        while (idle := _max_idle_ms(client)) >= last:
            last = idle
            time.sleep(0.005)
        victim.kill()
        killed = time.monotonic()
        while any(r["consumer"] != "heir" for r in _rows(client)):
            time.sleep(0.01)
        latency = time.monotonic() - killed
        print(f"visibility timeout  {visibility_timeout_s:g} s")
        late = latency - visibility_timeout_s
        print(f"taken over after    {latency:.2f} s (timeout + {late:.2f} s)")
        return 0
    finally:
        heir.stop()
        victim.kill()
        client.close()
        server.stop()


def _rows(client: redis.Redis) -> list[dict[str, object]]:
    return list(client.xpending_range(KEYS.stream, KEYS.group, "-", "+", 100))


def _max_idle_ms(client: redis.Redis) -> int:
    return max(int(str(r["time_since_delivered"])) for r in _rows(client))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50_000, help="valid jobs")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--long-jobs", type=int, default=20)
    parser.add_argument("--long-job-ms", type=int, default=7000)
    parser.add_argument("--poison-jobs", type=int, default=5)
    parser.add_argument("--fault-phase-s", type=float, default=90.0)
    parser.add_argument("--sigkills", type=int, default=20)
    parser.add_argument("--sigterms", type=int, default=4)
    parser.add_argument("--client-kills", type=int, default=6)
    parser.add_argument("--redis-restarts", type=int, default=2)
    parser.add_argument("--visibility-timeout-s", type=float, default=3.0)
    parser.add_argument("--grace-period-s", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--settle-timeout-s", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lanes", default="", help="JOBQUEUE_LANES, e.g. high:8-10,low:1-7")
    parser.add_argument("--partitions", type=int, default=1, help="JOBQUEUE_PARTITIONS")
    parser.add_argument("--reclaim-latency", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jobqueue-chaos-") as tmp:
        if args.reclaim_latency:
            return reclaim_latency(args.visibility_timeout_s, Path(tmp))
        return chaos(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
