"""Priority lanes: how long a high-priority job waits behind a low-priority backlog.

One private redis-server, one ``jobqueue worker jobqueue.worker.testing:app`` process
(``--concurrency``, default 64) per scenario, all in this invocation:

1. **lanes** (``JOBQUEUE_LANES=high:8-10,normal:4-7,low:1-3``, strict order): a backlog
   of ``--backlog`` (100,000) ``noop`` jobs in the ``low`` lane; once the worker is busy
   with it, ``--high`` (200) ``stamp`` jobs are added to the ``high`` lane one every
   ``--pace-ms`` (5 ms). Each high job's enqueue-to-start is its ``stamp`` start time
   minus the wall-clock time just before its ``XADD`` (same machine, same clock).
2. **one stream** (no lanes): the same backlog and high jobs in the queue's one stream,
   so every high job waits behind the backlog ahead of it.
3. **weighted** (``JOBQUEUE_LANE_MODE=weighted``, ``--weights`` ``high:6,normal:3,low:1``):
   ``--weighted-backlog`` (20,000) jobs in each lane; once that many were read in all,
   each lane's share of the entries read (``XINFO GROUPS`` ``entries-read``), every lane
   still backlogged.

    .venv/bin/python bench/priority_lanes.py [--backlog 100000] [--high 200]
        [--concurrency 64] [--pace-ms 5] [--weighted-backlog 20000]

Prints p50/p95/p99/max enqueue-to-start of the high jobs in both scenarios and the
weighted shares.
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
sys.path.insert(0, str(ROOT / "core"))
from support.redis_server import RedisServer, free_port  # noqa: E402

from jobqueue.core.keys import QueueKeys  # noqa: E402

LANES = "high:8-10,normal:4-7,low:1-3"
KEYS = QueueKeys("bench:work", "workers")
HIGH, NORMAL, LOW = KEYS.lane("high"), KEYS.stream, KEYS.lane("low")
FILL_CHUNK = 5000
STAMPS = "bench:stamps"


def fill(client: redis.Redis, stream: str, jobs: int, priority: int) -> None:
    fields = {"type": "noop", "payload": '{"n": 1}', "priority": str(priority)}
    for start in range(0, jobs, FILL_CHUNK):
        with client.pipeline(transaction=False) as pipe:
            for n in range(start, min(jobs, start + FILL_CHUNK)):
                job = {**fields, "id": f"{stream}-{n}", "attempts": "0"}
                pipe.xadd(stream, {**job, "enqueued_at": "2026-01-01T00:00:00Z"})
            pipe.execute()


def start_worker(url: str, concurrency: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [str(ROOT / ".venv/bin/jobqueue"), "worker", "jobqueue.worker.testing:app"]
    command += ["--redis-url", url, "--stream", KEYS.stream, "--group", KEYS.group]
    command += ["--concurrency", str(concurrency), "--http-port", str(free_port())]
    command += ["--consumer", "bench-worker"]
    return subprocess.Popen(command, stderr=subprocess.DEVNULL, env={**os.environ, **env})


def entries_read(client: redis.Redis, stream: str) -> int:
    if not client.exists(stream):
        return 0
    for group in client.xinfo_groups(stream):
        if group["name"] == KEYS.group:
            return int(group["entries-read"] or 0)
    return 0


def wait_until(check: object, what: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode} waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def high_waits(
    client: redis.Redis, url: str, args: argparse.Namespace, *, lanes: bool
) -> list[float]:
    """Enqueue-to-start (seconds) of each high job added under the low backlog."""
    client.flushdb()
    env = {"JOBQUEUE_LANES": LANES} if lanes else {"JOBQUEUE_LANES": ""}
    low, high = (LOW, HIGH) if lanes else (KEYS.stream, KEYS.stream)
    for stream in (HIGH, NORMAL, LOW) if lanes else (KEYS.stream,):
        client.xgroup_create(stream, KEYS.group, id="0", mkstream=True)
    fill(client, low, args.backlog, 2)
    proc = start_worker(url, args.concurrency, env)
    try:
        # Busy with the backlog: a good part of a second's work done.
        busy = min(5000, args.backlog // 4)
        wait_until(lambda: entries_read(client, low) > busy, "the backlog to be worked", proc, 60)
        enqueued: dict[str, float] = {}
        for n in range(args.high):
            job_id = f"high-{n}"
            fields = {"id": job_id, "type": "stamp", "priority": "9", "attempts": "0"}
            fields["payload"] = orjson.dumps({"into": STAMPS}).decode()
            fields["enqueued_at"] = "2026-01-01T00:00:00Z"
            enqueued[job_id] = time.time()
            client.xadd(high, fields)  # type: ignore[arg-type]
            time.sleep(args.pace_ms / 1000)
        # Each stamp job pushes a start and an end line.
        wait_until(lambda: client.llen(STAMPS) >= 2 * args.high, "the high jobs", proc, 300)
        waits = []
        for line in client.lrange(STAMPS, 0, -1):
            what, at, job_id, *_ = line.split()
            if what == "start":
                waits.append(float(at) - enqueued[job_id])
        return waits
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def weighted_shares(client: redis.Redis, url: str, args: argparse.Namespace) -> dict[str, float]:
    client.flushdb()
    for stream, priority in ((HIGH, 9), (NORMAL, 5), (LOW, 2)):
        client.xgroup_create(stream, KEYS.group, id="0", mkstream=True)
        fill(client, stream, args.weighted_backlog, priority)
    env = {"JOBQUEUE_LANES": LANES, "JOBQUEUE_LANE_MODE": "weighted"}
    env["JOBQUEUE_LANE_WEIGHTS"] = args.weights
    proc = start_worker(url, args.concurrency, env)
    try:
        # Snapshot once as many entries were read as one lane holds: with no lane
        # above 100% of the reads, none has run dry yet.
        streams = (HIGH, NORMAL, LOW)
        total = args.weighted_backlog
        wait_until(
            lambda: sum(entries_read(client, s) for s in streams) >= total, "reads", proc, 120
        )
        read = {
            name: entries_read(client, s)
            for name, s in zip(("high", "normal", "low"), (HIGH, NORMAL, LOW), strict=True)
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if max(read.values()) >= args.weighted_backlog:
        print("  (a lane ran dry: raise --weighted-backlog or lower --weighted-s)")
    total = sum(read.values())
    return {name: n / total for name, n in read.items()} | {"read": float(total)}


def quantiles(waits: list[float]) -> str:
    ms = sorted(w * 1000 for w in waits)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return f"p50 {cuts[49]:9.1f}  p95 {cuts[94]:9.1f}  p99 {cuts[98]:9.1f}  max {ms[-1]:9.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--high", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pace-ms", type=float, default=5.0)
    parser.add_argument("--weighted-backlog", type=int, default=20_000)
    parser.add_argument("--weights", default="high:6,normal:3,low:1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            run(server.url, args)
        finally:
            server.stop()


def run(url: str, args: argparse.Namespace) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    print(f"load before: {Path('/proc/loadavg').read_text().strip()}")
    print(f"high jobs enqueued under a {args.backlog}-job low backlog, enqueue-to-start ms:")
    laned = high_waits(client, url, args, lanes=True)
    print(f"  lanes (strict)   {quantiles(laned)}")
    single = high_waits(client, url, args, lanes=False)
    print(f"  one stream       {quantiles(single)}")
    shares = weighted_shares(client, url, args)
    print(
        f"weighted {args.weights}: shares of {int(shares['read'])} entries read: "
        + ", ".join(f"{n} {shares[n]:.3f}" for n in ("high", "normal", "low"))
    )
    print(f"load after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
