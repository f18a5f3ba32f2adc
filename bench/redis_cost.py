"""Redis CPU per job, end to end (enqueue -> acknowledgement): jobqueue vs the raw commands.

Both run in this invocation, alternating per round, against one private redis-server
the benchmark starts; the figures come from the server itself (``INFO cpu`` and
``INFO commandstats`` deltas), so they do not depend on how fast the Python side is.

1. **raw**: pipelined ``XADD`` of the SPEC §2 fields (``--batch`` per pipeline), then
   ``XREADGROUP COUNT 100`` + one multi-id ``XACK`` per batch: the floor of any Redis
   Streams queue, with no status record and no guarantee beyond the stream's.
2. **jobqueue**: ``Client.enqueue_many`` of the same jobs (``--batch`` per call, default
   configuration: status records, atomic scripts), then one ``jobqueue worker
   jobqueue.worker.testing:app`` process in its default configuration runs them all.

Status lookups (``Client.get``) are measured separately, per lookup. Printed: Redis CPU
per job for each phase (median over rounds) and the ratio jobqueue/raw, then the
per-command cost per job (``usec`` of ``INFO commandstats`` over all rounds, divided by
the jobs): commands a script runs count both under their own name and in the script's
``eval``/``evalsha`` row, so the script rows minus their commands is Lua's own time.

    .venv/bin/python bench/redis_cost.py [--jobs 20000] [--batch 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.redis_server import RedisServer, free_port  # noqa: E402

from jobqueue.core.client import Client, NewJob  # noqa: E402
from jobqueue.core.settings import QueueSettings  # noqa: E402
from jobqueue.core.wire import new_job_id, utc_now_iso  # noqa: E402

STREAM, GROUP = "bench:work", "workers"
PAYLOAD = '{"to": "a@example.com", "template": "hi"}'


class Meter:
    """Redis CPU seconds and per-command usec, as deltas between two snapshots."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.cpu_s = 0.0
        self.usec: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._start: tuple[float, dict[str, tuple[int, int]]] | None = None

    def _snapshot(self) -> tuple[float, dict[str, tuple[int, int]]]:
        cpu = self.client.info("cpu")
        stats = self.client.info("commandstats")
        per = {
            name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in stats.items()
        }
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), per

    def __enter__(self) -> Meter:
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._start is not None
        cpu0, per0 = self._start
        cpu1, per1 = self._snapshot()
        self.cpu_s += cpu1 - cpu0
        for name, (calls, usec) in per1.items():
            calls0, usec0 = per0.get(name, (0, 0))
            self.calls[name] += calls - calls0
            self.usec[name] += usec - usec0
        # The snapshot's own INFO calls are not the workload's.
        self.calls.pop("info", None)
        self.usec.pop("info", None)


def fresh(client: redis.Redis) -> None:
    client.flushdb()
    client.xgroup_create(STREAM, GROUP, id="$", mkstream=True)


def raw_round(client: redis.Redis, jobs: int, batch: int, enq: Meter, proc: Meter) -> None:
    """Pipelined XADD of ``jobs`` entries, then read and acknowledge them all."""
    fresh(client)
    with enq:
        for start in range(0, jobs, batch):
            with client.pipeline(transaction=False) as pipe:
                for _ in range(start, min(jobs, start + batch)):
                    fields = {"id": new_job_id(), "type": "noop", "payload": PAYLOAD}
                    fields |= {"priority": "5", "enqueued_at": utc_now_iso(), "attempts": "0"}
                    pipe.xadd(STREAM, fields)
                pipe.execute()
    done = 0
    with proc:
        while done < jobs:
            reply = client.xreadgroup(GROUP, "raw", {STREAM: ">"}, count=100, block=1000)
            rows = reply[0][1]
            client.xack(STREAM, GROUP, *[entry_id for entry_id, _ in rows])
            done += len(rows)


def finished(client: redis.Redis, jobs: int) -> bool:
    for group in client.xinfo_groups(STREAM):
        if group["name"] == GROUP:
            return int(group["entries-read"] or 0) >= jobs and int(group["pending"]) == 0
    return False


def product_round(
    client: redis.Redis, url: str, jobs: int, batch: int, enq: Meter, proc: Meter
) -> list[str]:
    """``Client.enqueue_many`` of ``jobs`` jobs, then one worker process runs them all."""
    fresh(client)
    ids: list[str] = []
    with Client(QueueSettings(redis_url=url, stream=STREAM, group=GROUP)) as jq, enq:
        for start in range(0, jobs, batch):
            count = min(jobs, start + batch) - start
            made = jq.enqueue_many([NewJob("noop", {"to": "a@example.com"})] * count)
            ids += [e.job_id for e in made]
    command = [str(ROOT / ".venv/bin/jobqueue"), "worker", "jobqueue.worker.testing:app"]
    command += ["--redis-url", url, "--stream", STREAM, "--group", GROUP]
    command += ["--http-port", str(free_port()), "--consumer", "bench-worker"]
    with proc:
        worker = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 600
            while not finished(client, jobs):
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited with {worker.returncode}")
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker did not finish in 600 s")
                time.sleep(0.02)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    return ids


def lookups(url: str, ids: list[str], meter: Meter) -> int:
    """``Client.get`` of up to 1000 finished jobs; every one must show ``succeeded``."""
    sample = ids[:: max(1, len(ids) // 1000)]
    with Client(QueueSettings(redis_url=url, stream=STREAM, group=GROUP)) as jq, meter:
        for job_id in sample:
            info = jq.get(job_id)
            if info is None or info.state != "succeeded":
                raise RuntimeError(f"job {job_id} shows {info}")
    return len(sample)


def print_commands(title: str, meters: list[Meter], jobs: int) -> None:
    usec: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for meter in meters:
        usec.update(meter.usec)
        calls.update(meter.calls)
    print(f"  {title}: per job, usec (calls)")
    for name, value in usec.most_common():
        if value / jobs >= 0.005:
            print(f"    {name:<14} {value / jobs:7.2f} us  ({calls[name] / jobs:.3f} calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        client = redis.Redis(port=server.port, decode_responses=True)
        rows: list[tuple[float, float, float, float]] = []
        raw_enq, raw_proc, jq_enq, jq_proc, get_meters = [], [], [], [], []
        looked_up = 0
        try:
            for n in range(args.rounds):
                meters = [Meter(client) for _ in range(5)]
                raw_round(client, args.jobs, args.batch, meters[0], meters[1])
                ids = product_round(client, server.url, args.jobs, args.batch, *meters[2:4])
                looked_up += lookups(server.url, ids, meters[4])
                per_job = [m.cpu_s * 1e6 / args.jobs for m in meters[:4]]
                rows.append((per_job[0], per_job[1], per_job[2], per_job[3]))
                raw_enq.append(meters[0])
                raw_proc.append(meters[1])
                jq_enq.append(meters[2])
                jq_proc.append(meters[3])
                get_meters.append(meters[4])
                raw_total, jq_total = per_job[0] + per_job[1], per_job[2] + per_job[3]
                print(
                    f"round {n + 1}: Redis CPU per job, raw {per_job[0]:.1f} + {per_job[1]:.1f}"
                    f" = {raw_total:.1f} us; jobqueue {per_job[2]:.1f} + {per_job[3]:.1f}"
                    f" = {jq_total:.1f} us; ratio {jq_total / raw_total:.2f}"
                )
        finally:
            client.close()
            server.stop()
    total_jobs = args.jobs * args.rounds
    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    ratios = [(r[2] + r[3]) / (r[0] + r[1]) for r in rows]
    print(f"\n{args.jobs} jobs x {args.rounds} rounds, batches of {args.batch}")
    print("Redis CPU per job (INFO cpu, median over rounds):")
    print(f"  enqueue   raw {med[0]:6.1f} us   jobqueue {med[2]:6.1f} us   x{med[2] / med[0]:.2f}")
    print(f"  process   raw {med[1]:6.1f} us   jobqueue {med[3]:6.1f} us   x{med[3] / med[1]:.2f}")
    print(
        f"  end to end raw {med[0] + med[1]:6.1f} us   jobqueue {med[2] + med[3]:6.1f} us"
        f"   ratio jobqueue/raw median {statistics.median(ratios):.2f}"
        f" (range {min(ratios):.2f}-{max(ratios):.2f})"
    )
    lookup_cpu = sum(m.cpu_s for m in get_meters) * 1e6 / max(1, looked_up)
    print(f"  status lookup (Client.get): {lookup_cpu:.1f} us each ({looked_up} lookups)")
    print("\nWhere Redis spends it (INFO commandstats, all rounds):")
    print_commands("raw enqueue", raw_enq, total_jobs)
    print_commands("raw process", raw_proc, total_jobs)
    print_commands("jobqueue enqueue", jq_enq, total_jobs)
    print_commands("jobqueue process", jq_proc, total_jobs)


if __name__ == "__main__":
    main()
