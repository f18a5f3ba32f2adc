"""Worker throughput: no-op jobs/s of one `jobqueue worker` process vs a raw redis-py loop.

Both run in this invocation against one private redis-server the benchmark starts:

1. the raw loop: ``XREADGROUP COUNT 100``, decode each entry's payload (orjson), one
   multi-id ``XACK`` per batch — the floor any Redis Streams consumer in Python pays;
2. ``jobqueue worker jobqueue.worker.testing:app`` (default settings but
   ``--concurrency``) consuming the same number of ``noop`` jobs, status records and
   all.

The jobs are written before the clock starts and made visible at once (the group is
created at the end of the stream, then moved to 0), so neither side pays for enqueueing.
The worker's CPU time comes from /proc (user + system), divided by the jobs it ran.

    .venv/bin/python bench/worker_throughput.py [--jobs 100000] [--concurrency 64] [--rounds 3]
        [--concurrency-limit N] [--lanes high:8-10,normal:4-7,low:1-3] [--ids ulid|serial]
        [--jobqueue PATH/TO/jobqueue]

``--jobqueue`` runs another checkout's worker (its console script) against the same
jobs and raw loop: how two commits compare in one invocation.

``--ids`` chooses the jobs' ids: ``ulid`` (the default) as every jobqueue client and
producer makes them, whose short successes go to a shared ``done`` hash; ``serial``
(``job-1``, ...) as a caller may choose them, each success then a record of its own (a
``HSET`` and an ``EXPIRE`` per job in Redis). Figures before 2026-11-30 used ``serial``.

``--lanes TEXT`` declares priority lanes (``JOBQUEUE_LANES``): the jobs are in the
default lane's stream (the queue's), the other lanes empty, so the run measures what
reading through the lanes script costs when one lane has work.

``--concurrency-limit N`` gives the ``noop`` type a concurrency limit of N
(``JOBQUEUE_CONCURRENCY_LIMITS=noop=N``): with N at least ``--concurrency`` it never
holds a job back, so the run measures what one limited type costs (a limiter script
call per read batch, a lease released per job) against the same raw loop.

Each round runs the raw loop, then the worker; the ratio of each round compares runs a
few seconds apart, and the median and range over rounds are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.redis_server import RedisServer, free_port  # noqa: E402

from jobqueue.core.wire import new_job_id  # noqa: E402

STREAM, GROUP = "bench:work", "workers"
FILL_CHUNK = 5000


def fill(client: redis.Redis, jobs: int, ids: str = "ulid") -> None:
    """Write ``jobs`` noop entries (SPEC §2 fields) behind a group created at the end.

    The database is emptied first: status records left by an earlier run (same job ids)
    would let the next run skip its ``running`` writes and look faster than it is.
    """
    client.flushdb()
    client.xgroup_create(STREAM, GROUP, id="$", mkstream=True)
    fields = {"type": "noop", "payload": '{"n": 1}', "priority": "5", "attempts": "0"}
    for start in range(0, jobs, FILL_CHUNK):
        with client.pipeline(transaction=False) as pipe:
            for n in range(start, min(jobs, start + FILL_CHUNK)):
                job_id = new_job_id() if ids == "ulid" else f"job-{n}"
                pipe.xadd(STREAM, {**fields, "id": job_id, "enqueued_at": "2026-01-01T00:00:00Z"})
            pipe.execute()


def raw_loop(client: redis.Redis, jobs: int, ids: str) -> float:
    """Seconds the minimal loop takes to consume ``jobs`` entries."""
    fill(client, jobs, ids)
    client.xgroup_setid(STREAM, GROUP, id="0")
    done = 0
    started = time.perf_counter()
    while done < jobs:
        reply = client.xreadgroup(GROUP, "raw", {STREAM: ">"}, count=100, block=1000)
        rows = reply[0][1]
        for _, entry in rows:
            orjson.loads(entry["payload"])
        client.xack(STREAM, GROUP, *[entry_id for entry_id, _ in rows])
        done += len(rows)
    return time.perf_counter() - started


def cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid``."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def finished(client: redis.Redis, jobs: int) -> bool:
    for group in client.xinfo_groups(STREAM):
        if group["name"] == GROUP:
            return int(group["entries-read"] or 0) >= jobs and int(group["pending"]) == 0
    return False


def redis_cpu_s(client: redis.Redis) -> float:
    """User + system CPU seconds the Redis server used so far."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def worker_run(
    client: redis.Redis,
    url: str,
    jobs: int,
    concurrency: int,
    env: dict[str, str],
    ids: str = "ulid",
    jobqueue: str = str(ROOT / ".venv/bin/jobqueue"),
) -> tuple[float, float, float]:
    """(seconds, CPU seconds, Redis CPU seconds) one worker process takes to run ``jobs``
    noop jobs."""
    fill(client, jobs, ids)
    command = [jobqueue, "worker", "jobqueue.worker.testing:app"]
    command += ["--redis-url", url, "--stream", STREAM, "--group", GROUP]
    command += ["--concurrency", str(concurrency), "--http-port", str(free_port())]
    command += ["--consumer", "bench-worker"]
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 30
        while not any(c["name"] == "bench-worker" for c in client.xinfo_consumers(STREAM, GROUP)):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the worker did not start")
            time.sleep(0.05)
        cpu_before, redis_before = cpu_s(proc.pid), redis_cpu_s(client)
        started = time.perf_counter()
        client.xgroup_setid(STREAM, GROUP, id="0")
        # A blocked XREADGROUP is woken by a new entry, not by SETID: add one (a no-op).
        client.xadd(STREAM, {"type": "noop", "payload": "{}", "id": "wake"})
        while not finished(client, jobs + 1):
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        redis_used = redis_cpu_s(client) - redis_before
        return elapsed, cpu_s(proc.pid) - cpu_before, redis_used
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="raw loop then worker, per round")
    parser.add_argument("--concurrency-limit", type=int, default=0, help="limit noop jobs")
    parser.add_argument("--lanes", default="", help="JOBQUEUE_LANES (the jobs: default lane)")
    parser.add_argument("--ids", choices=["ulid", "serial"], default="ulid", help="job ids")
    parser.add_argument("--jobqueue", default=str(ROOT / ".venv/bin/jobqueue"), help="worker")
    args = parser.parse_args()
    env = {}
    if args.concurrency_limit:
        env["JOBQUEUE_CONCURRENCY_LIMITS"] = f"noop={args.concurrency_limit}"
    if args.lanes:
        env["JOBQUEUE_LANES"] = args.lanes
    rounds: list[tuple[float, float, float, float]] = []  # raw s, worker s, its CPU, Redis's
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            client = redis.Redis.from_url(server.url, decode_responses=True)
            for _ in range(args.rounds):
                raw_s = raw_loop(client, args.jobs, args.ids)
                worker_s, worker_cpu_s, redis_s = worker_run(
                    client, server.url, args.jobs, args.concurrency, env, args.ids, args.jobqueue
                )
                rounds.append((raw_s, worker_s, worker_cpu_s, redis_s))
        finally:
            server.stop()
    limited = f", noop limited to {args.concurrency_limit}" if args.concurrency_limit else ""
    limited += f", lanes {args.lanes}" if args.lanes else ""
    limited += f", {args.ids} ids"
    print(f"jobs per run          {args.jobs}  (concurrency {args.concurrency}{limited})")
    print("round     raw jobs/s  worker jobs/s  ratio  worker CPU us/job  Redis CPU us/job")
    for n, (raw_s, worker_s, cpu_s, redis_s) in enumerate(rounds, 1):
        raw_rate, worker_rate = args.jobs / raw_s, args.jobs / worker_s
        row = f"{n:5d}  {raw_rate:13.0f}  {worker_rate:13.0f}  {worker_rate / raw_rate:5.2f}"
        print(f"{row}  {cpu_s / args.jobs * 1e6:17.1f}  {redis_s / args.jobs * 1e6:16.1f}")
    ratios = sorted(raw_s / worker_s for raw_s, worker_s, _, _ in rounds)
    cpus = sorted(cpu_s / args.jobs * 1e6 for _, _, cpu_s, _ in rounds)
    redis_cpus = sorted(redis_s / args.jobs * 1e6 for *_, redis_s in rounds)
    print(f"ratio worker/raw      median {statistics.median(ratios):.2f}", end="")
    print(f"  range {ratios[0]:.2f}-{ratios[-1]:.2f}")
    print(f"worker CPU per job    median {statistics.median(cpus):.1f} us", end="")
    print(f"  range {cpus[0]:.1f}-{cpus[-1]:.1f}")
    # On a busy 2-core machine the worker and Redis run in turn rather than side by
    # side (a request's write wakes Redis, which takes the worker's core), so the rate
    # follows the sum of the two (bench/README.md).
    print(f"Redis CPU per job     median {statistics.median(redis_cpus):.1f} us", end="")
    print(f"  range {redis_cpus[0]:.1f}-{redis_cpus[-1]:.1f}")


if __name__ == "__main__":
    main()
