"""Scale-out on Redis Cluster: Redis CPU per job, and a partitioned queue on 1 vs 3 primaries.

Two targets in this invocation, alternating per round, each started by the benchmark:
a single redis-server, and a Redis Cluster of 3 primaries (no replicas, so every
node's CPU is a primary's). On each, one queue of ``--partitions`` partitions (on the
cluster one partition per primary: `jobqueue.core.keys.partition_streams`) gets
``--jobs`` jobs (``Client.enqueue_many``, 100 a call, spread over the partitions by
their ids; not timed), then ``--workers`` ``jobqueue worker --burst`` processes drain it,
each consuming its share of the partitions (``--worker-partitions``). Measured from the
servers themselves (``INFO cpu`` and ``INFO commandstats`` deltas, per primary) and the
wall clock of the drain:

- Redis CPU per job (µs): server CPU of enqueue and drain (read, acknowledgement,
  status) summed over the primaries, divided by the jobs; the commands that spend it
  (``commandstats``, µs per job);
- drain throughput (jobs/s): bound by the workers on a small machine;
- the Redis ceiling (jobs/s): the jobs divided by the busiest primary's CPU seconds,
  i.e. the throughput at which that primary's one core would be full. One primary
  carries every job; 3 primaries carry a third each if the partitions are balanced, so
  the ratio of ceilings is the scale-out that Redis itself allows.

From the cluster's CPU per job: jobs/s one primary core carries at 100 % and at a 70 %
target, and the primaries that 1 M jobs/s needs (partitions at least as many as the
primaries; Redis runs commands on one thread, so a primary is a core).

    .venv/bin/python bench/cluster_scaleout.py [--jobs 60000] [--partitions 3] [--workers 3]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.redis_cluster import RedisCluster  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402

from jobqueue.core.client import Client, NewJob  # noqa: E402
from jobqueue.core.keys import partition_streams  # noqa: E402

JOBQUEUE = str(Path(sys.executable).with_name("jobqueue"))
BATCH = 100
STREAM = "bench:work"
TARGET_UTILISATION = 0.7


def cpu_s(ports: list[int]) -> list[float]:
    out = []
    for port in ports:
        with redis.Redis(port=port) as client:
            cpu = client.info("cpu")
        out.append(float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]))
    return out


def command_usec(ports: list[int]) -> dict[str, float]:
    """Microseconds spent per command name, summed over ``ports`` (INFO commandstats)."""
    total: dict[str, float] = {}
    for port in ports:
        with redis.Redis(port=port) as client:
            stats = client.info("commandstats")
        for name, fields in stats.items():
            command = name.removeprefix("cmdstat_")
            total[command] = total.get(command, 0.0) + float(fields["usec"])
    return total


def run(
    url: str, ports: list[int], jobs: int, partitions: int, workers: int
) -> dict[str, float | dict[str, float]]:
    before, commands_before = cpu_s(ports), command_usec(ports)
    with Client.from_url(url, stream=STREAM, partitions=partitions) as client:
        for _ in range(0, jobs, BATCH):
            client.enqueue_many([NewJob("noop", {})] * BATCH)
        spread = [s.length for s in client.partition_stats()]
    enqueued = cpu_s(ports)
    start = time.monotonic()
    command = [JOBQUEUE, "worker", "jobqueue.worker.testing:app", "--redis-url", url]
    command += ["--burst", "--http-port", "0", "--log-level", "WARNING", "--stream", STREAM]
    command += ["--partitions", str(partitions)]
    shares = [range(partitions)[w::workers] for w in range(workers)]
    procs = [
        subprocess.Popen(
            [*command, "--worker-partitions", ",".join(map(str, share))],
            stdout=subprocess.DEVNULL,
        )
        for share in shares
        if share
    ]
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            raise RuntimeError(f"a worker exited {proc.returncode}")
    elapsed = time.monotonic() - start
    after, commands_after = cpu_s(ports), command_usec(ports)
    drain = [a - e for a, e in zip(after, enqueued, strict=True)]
    used = [a - b for a, b in zip(after, before, strict=True)]
    per_command = {
        name: (usec - commands_before.get(name, 0.0)) / jobs
        for name, usec in commands_after.items()
    }
    return {
        "cpu_us_per_job": sum(used) / jobs * 1e6,
        "drain_jobs_per_s": jobs / elapsed,
        "busiest_primary_share": max(drain) / elapsed,
        "ceiling_jobs_per_s": jobs / max(used),
        "least_partition_share": min(spread) / jobs,
        "commands": per_command,
    }


def flush(ports: list[int]) -> None:
    for port in ports:
        with redis.Redis(port=port) as client:
            client.flushall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=60000, help="jobs per round")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3, help="worker processes draining")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    jobs = max(BATCH, args.jobs // BATCH * BATCH)
    with tempfile.TemporaryDirectory() as tmp:
        single = RedisServer(Path(tmp) / "single")
        cluster = RedisCluster(Path(tmp) / "cluster", replicas=0)
        single.start()
        cluster.start()
        try:
            primary_ports = [node.port for node in cluster.nodes]
            owners = sorted(
                {cluster.owner(s).port for s in partition_streams(STREAM, args.partitions)}
            )
            print(f"partitions of {STREAM} on the cluster: primaries {owners}")
            results: dict[str, list[dict[str, Any]]] = {"1 primary": [], "3 primaries": []}
            for _ in range(args.rounds):
                for label, url, ports in (
                    ("1 primary", f"redis://127.0.0.1:{single.port}/0", [single.port]),
                    ("3 primaries", cluster.url, primary_ports),
                ):
                    flush(ports)
                    results[label].append(
                        run(url, ports, jobs, args.partitions, min(args.workers, args.partitions))
                    )
        finally:
            single.stop()
            cluster.stop()
    report(results, args, jobs)


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, jobs: int) -> None:
    print(
        f"1 queue of {args.partitions} partitions x {jobs} jobs, "
        f"{min(args.workers, args.partitions)} burst workers, {args.rounds} rounds"
    )
    medians: dict[str, dict[str, float]] = {}
    for label, rounds in results.items():
        keys = [k for k in rounds[0] if k != "commands"]
        medians[label] = {k: statistics.median(r[k] for r in rounds) for k in keys}
        m = medians[label]
        print(
            f"{label:12} Redis CPU/job {m['cpu_us_per_job']:.1f} us   drain "
            f"{m['drain_jobs_per_s']:,.0f} jobs/s   busiest primary at "
            f"{m['busiest_primary_share']:.0%} of a core   Redis ceiling "
            f"{m['ceiling_jobs_per_s']:,.0f} jobs/s   smallest partition "
            f"{m['least_partition_share']:.0%} of the jobs"
        )
        commands = {
            name: statistics.median(r["commands"].get(name, 0.0) for r in rounds)
            for name in rounds[0]["commands"]
        }
        top = sorted(commands.items(), key=lambda item: -item[1])[:6]
        print("             commandstats us/job: " + ", ".join(f"{n} {v:.1f}" for n, v in top))
    one, three = medians["1 primary"], medians["3 primaries"]
    print(
        f"throughput ratio 3 primaries / 1 primary: drain "
        f"{three['drain_jobs_per_s'] / one['drain_jobs_per_s']:.2f}x, Redis ceiling "
        f"{three['ceiling_jobs_per_s'] / one['ceiling_jobs_per_s']:.2f}x"
    )
    per_job = three["cpu_us_per_job"]
    per_core = 1e6 / per_job
    at_target = per_core * TARGET_UTILISATION
    print(
        f"projection: {per_core:,.0f} jobs/s per primary core at 100 %, {at_target:,.0f} at "
        f"{TARGET_UTILISATION:.0%}; primaries for 1 M jobs/s: {math.ceil(1e6 / per_core)} "
        f"at 100 %, {math.ceil(1e6 / at_target)} at {TARGET_UTILISATION:.0%}"
    )


if __name__ == "__main__":
    main()
