"""Enqueue-to-start latency of one worker process across its capacity.

In this invocation, against one private redis-server:

1. capacity: no-op jobs/s of one ``jobqueue worker`` (defaults) draining a stream
   filled beforehand (bench/worker_throughput.py's method);
2. for each load (default 10, 25, 50, 75, 90 % of that capacity): a worker running
   bench/latency_app.py (defaults) and, in a separate process, an open-loop producer
   that adds ``stamp`` jobs on a fixed schedule (pipelined ``XADD`` of the jobs due,
   each millisecond). Each job carries the time it was *due*, and the handler takes the wall
   clock at its start: a producer or worker that falls behind shows as latency instead
   of slowing the arrivals (no coordinated omission). The producer's own lag (sent -
   due) is reported beside it, so a late producer is not taken for a slow worker.

    .venv/bin/python bench/latency.py [--seconds 10] [--loads 10,25,50,75,90] [--stages]
        [--before OTHER/.venv/bin/jobqueue] [--nice N] [--worker-nice N] [--producer-nice N]

``--stages`` splits each load's delay by where the job was (`print_stages`);
``--before`` runs another checkout's worker at every load too, in alternating order, so
a change is compared within one invocation. ``--nice -10`` (root) puts Redis, the
workers and the producer ahead of whatever else the machine runs, so the rows measure
the three processes sharing the cores rather than the other load; ``--worker-nice`` and
``--producer-nice`` shift one of them against the others.

Both workers get this process's environment, so ``JOBQUEUE_CONCURRENCY=16 ...`` (or
any other worker setting) measures a variant's capacity and curve alike.

Prints capacity, then p50/p95/p99/max of start - due per load, and the machine's load
average (the figures mean little on a machine other processes load).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import redis

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from worker_throughput import RedisServer, finished, free_port, worker_run  # noqa: E402

from jobqueue.core.wire import new_job_id  # noqa: E402

STREAM, GROUP = "bench:work", "workers"
TICK_S = 0.001
CAPACITY_JOBS = 20_000


def produce(url: str, rate: float, seconds: float) -> None:
    """Add ``rate`` stamp jobs a second for ``seconds``, on schedule (subprocess).

    The jobs due at each tick go out as one pipelined ``XADD`` per job with the SPEC
    fields (bench/worker_throughput.py's fill): ``enqueue_many`` costs the producer and
    Redis several times more per job, and on two cores that cost, not the worker, set
    the tail from half the capacity up.
    """
    client = redis.Redis.from_url(url)
    fields = {"type": "stamp", "priority": "5", "attempts": "0"}
    fields["enqueued_at"] = "2026-01-01T00:00:00Z"
    total, start = int(rate * seconds), time.time() + 0.2
    sent = 0
    while sent < total:
        now = time.time()
        due_count = min(total, int((now - start) * rate) + 1) - sent
        if due_count <= 0:
            time.sleep(min(TICK_S, start + (sent / rate) - now))
            continue
        with client.pipeline(transaction=False) as pipe:
            for n in range(sent, sent + due_count):
                payload = orjson.dumps({"due": start + n / rate, "sent": now})
                pipe.xadd(STREAM, {**fields, "id": new_job_id(), "payload": payload})
            pipe.execute()
        sent += due_count
    client.close()


def measure(
    client: redis.Redis,
    url: str,
    rate: float,
    seconds: float,
    out: Path,
    stages: bool,
    jobqueue: str,
    producer_nice: int,
    worker_nice: int,
) -> tuple[list[tuple[float, float, float]], float]:
    """(start - due, sent - due, start - added) of every job, in seconds, at ``rate``
    jobs/s (added: when Redis added the entry, from its id), and the jobs per read."""
    client.flushdb()
    client.xgroup_create(STREAM, GROUP, id="$", mkstream=True)
    env = {**os.environ, "PYTHONPATH": str(BENCH)}
    if stages:
        env["LATENCY_BENCH_STAGES"] = "1"
    command = [jobqueue, "worker", "latency_app:app"]
    command += ["--redis-url", url, "--stream", STREAM, "--group", GROUP]
    command += ["--http-port", str(free_port()), "--consumer", "bench-worker"]
    worker = subprocess.Popen(
        command, env=env, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.nice(worker_nice)
    )
    try:
        deadline = time.monotonic() + 60
        while not any(c["name"] == "bench-worker" for c in client.xinfo_consumers(STREAM, GROUP)):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the worker did not start")
            time.sleep(0.05)
        time.sleep(0.5)  # past start-up's first reads
        client.config_resetstat()
        ran, waited = schedstat(worker.pid)
        begun = time.monotonic()
        producer = [sys.executable, __file__, "--produce", url, str(rate), str(seconds)]
        subprocess.run(producer, check=True, preexec_fn=lambda: os.nice(producer_nice))
        total = int(rate * seconds)
        while not finished(client, total):
            time.sleep(0.05)
        now_ran, now_waited = schedstat(worker.pid)
        stats = client.info("commandstats")
        calls = {
            name[8:]: int(v["calls"]) / total
            for name, v in stats.items()
            if name[8:] not in ("xadd", "info", "xinfo", "xpending", "config|resetstat")
        }
        print(
            f"      worker over {time.monotonic() - begun:.1f} s: on a CPU "
            f"{now_ran - ran:.2f} s ({1e6 * (now_ran - ran) / total:.1f} us a job), "
            f"runnable but waiting for one {now_waited - waited:.2f} s; Redis calls a job: "
            + ", ".join(f"{k} {v:.2f}" for k, v in sorted(calls.items()) if v >= 0.01)
        )
        per_read = total / max(1, reads(client))
        out.unlink(missing_ok=True)
        from jobqueue.core.client import Client

        with Client.from_url(url, stream=STREAM, group=GROUP) as jq:
            jq.enqueue("dump", {"into": str(out)})
        while not out.exists():
            time.sleep(0.05)
        time.sleep(0.2)  # the write is one call; let it finish
        rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        if stages:
            print_stages(rows, orjson.loads(out.with_suffix(".extra").read_bytes()))
        return [(row[0], row[0] - row[1], row[2]) for row in rows], per_read
    finally:
        worker.terminate()
        worker.wait(timeout=30)


STAGES = (
    "in Redis, no read out",
    "read out to reply",
    "reply to reader",
    "to dispatch",
    "dispatch to handler",
)


def print_stages(rows: list[list[float]], extra: dict[str, list[float]]) -> None:
    """The delay from the producer's send to the handler's start, split by what the
    worker was doing (`latency_app` with ``LATENCY_BENCH_STAGES=1``): for all jobs and
    for the slowest 1 %, the mean of each part, ms; and the event loop's stalls."""
    parts = []
    for row in rows:
        sent, read, land, resumed, dispatched, start = row[3:9]
        if not read:
            continue
        asked = max(read, sent)
        parts.append((start - sent, asked - sent, land - asked, resumed - land,
                      dispatched - resumed, start - dispatched))  # fmt: skip
    parts.sort()
    for label, some in (("all", parts), ("slowest 1%", parts[-max(1, len(parts) // 100) :])):
        means = [1000 * sum(p[i] for p in some) / len(some) for i in range(6)]
        split = ", ".join(f"{name} {m:.2f}" for name, m in zip(STAGES, means[1:], strict=True))
        print(f"      {label}: start-sent {means[0]:.2f} ms = {split}")
    stalls, pauses = sorted(extra["stalls"]), extra["gc"]
    if stalls:
        over = [s for s in stalls if s[0] > 0.002]
        wall, cpu = sum(s[0] for s in over), sum(s[1] for s in over)
        by_gen = [max((p[0] for p in pauses if p[1] == g), default=0) for g in (0, 1, 2)]
        print(
            f"      loop stalls: p99 {1000 * percentile(stalls, 0.99)[0]:.1f} ms, max "
            f"{1000 * stalls[-1][0]:.1f} ms (CPU {1000 * stalls[-1][1]:.1f} ms); over 2 ms: "
            f"{len(over)} stalls, {wall:.2f} s, CPU {cpu:.2f} s; gc: {len(pauses)} runs, "
            f"max {1000 * max(pauses, default=[0])[0]:.1f} ms, total "
            f"{1000 * sum(p[0] for p in pauses):.0f} ms, longest by generation "
            f"{[round(1000 * g, 1) for g in by_gen]} ms, "
            f"full collections {sum(p[1] == 2 for p in pauses)}"
        )


def schedstat(pid: int) -> tuple[float, float]:
    """Seconds process ``pid``'s main thread ran on a CPU and waited on a run queue
    (runnable, not running: the machine's other load), from /proc."""
    try:
        ran, waited, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    except OSError:
        return 0.0, 0.0
    return int(ran) / 1e9, int(waited) / 1e9


def reads(client: redis.Redis) -> int:
    """``XREADGROUP`` calls since the last ``CONFIG RESETSTAT`` (every consumer's)."""
    stats = client.info("commandstats").get("cmdstat_xreadgroup", {})
    return int(stats.get("calls", 0))


def percentile(values: list[Any], q: float) -> Any:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--produce":
        produce(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per load")
    parser.add_argument("--loads", default="10,25,50,75,90", help="percent of capacity")
    parser.add_argument(
        "--stages", action="store_true", help="split each load's delay (see print_stages)"
    )
    parser.add_argument(
        "--before",
        help="another checkout's .venv/bin/jobqueue: each load runs it too, alternating",
    )
    parser.add_argument(
        "--producer-nice", type=int, default=0, help="added to the load generator's nice value"
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice value of this process, inherited by Redis, the workers and the producer "
        "(negative: as root, ahead of the machine's other load)",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="added to the worker's nice value",
    )
    args = parser.parse_args()
    os.nice(args.nice)
    loads = [int(x) for x in args.loads.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            client = redis.Redis.from_url(server.url, decode_responses=True)
            concurrency = int(os.environ.get("JOBQUEUE_CONCURRENCY", "64"))  # as measured
            client.config_resetstat()
            elapsed, _, _ = worker_run(client, server.url, CAPACITY_JOBS, concurrency, {}, "ulid")
            capacity, per_read = CAPACITY_JOBS / elapsed, CAPACITY_JOBS / max(1, reads(client))
            print(f"load average {os.getloadavg()[0]:.1f}; capacity {capacity:.0f} jobs/s", end="")
            print(f" ({per_read:.1f} jobs per read)")
            print(
                "load  jobs/s  start-due ms: p50     p95     p99     max"
                "   producer lag p99 ms   start-added p99 ms   jobs/read"
            )
            ours = str(BENCH.parent / ".venv/bin/jobqueue")
            runs = [("", ours)] if not args.before else [("now ", ours), ("base", args.before)]
            # Which checkout goes first alternates from load to load.
            plan = [
                (load, *run) for i, load in enumerate(loads) for run in runs[:: 1 - 2 * (i % 2)]
            ]
            for load, label, jobqueue in plan:
                rate = capacity * load / 100
                pairs, per_read = measure(
                    client,
                    server.url,
                    rate,
                    args.seconds,
                    Path(tmp) / "d",
                    args.stages,
                    jobqueue,
                    args.producer_nice,
                    args.worker_nice,
                )
                delays, lags = [p[0] for p in pairs], [p[1] for p in pairs]
                in_worker = [p[2] for p in pairs]
                ms = [1000 * percentile(delays, q) for q in (0.5, 0.95, 0.99)] + [
                    1000 * max(delays)
                ]
                row = f"{label}{load:3d}%  {rate:6.0f}  " + "  ".join(f"{v:7.1f}" for v in ms)
                row += f"   {1000 * percentile(lags, 0.99):7.1f}"
                row += f"              {1000 * percentile(in_worker, 0.99):7.1f}"
                print(f"{row}   {per_read:9.1f}", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
