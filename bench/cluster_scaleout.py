"""Scale-out on Redis Cluster: Redis CPU per job, and throughput over 1 vs 3 primaries.

Two targets in this invocation, alternating per round, each started by the benchmark:
a single redis-server, and a Redis Cluster of 3 primaries (no replicas, so every
node's CPU is a primary's). On each, ``--queues`` queues (stand-ins for the partitions of
one partitioned queue, which jobqueue does not have yet: each is its own stream, named
so that on the cluster they hash to different primaries) get ``--jobs`` jobs each
(``Client.enqueue_many``, not timed), then one ``jobqueue worker --burst`` per queue
drains its queue. Measured from the servers themselves (``INFO cpu`` deltas summed over
the primaries) and the wall clock of the drain:

- Redis CPU per job (µs): server CPU of the drain (read, acknowledgement, status) plus
  the enqueue's, divided by the jobs;
- drain throughput (jobs/s) and the busiest primary's CPU share during it.

From the cluster's CPU per job: jobs/s one primary core carries at 100 % and at a 70 %
target, and the primaries that 1 M jobs/s needs (one queue per primary and more
partitions than primaries; Redis runs commands on one thread, so a primary is a core).

    .venv/bin/python bench/cluster_scaleout.py [--jobs 20000] [--queues 3] [--rounds 3]
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

import redis
from redis.crc import key_slot

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.redis_cluster import RedisCluster  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402

from jobqueue.core.client import Client, NewJob  # noqa: E402

JOBQUEUE = str(Path(sys.executable).with_name("jobqueue"))
BATCH = 100
TARGET_UTILISATION = 0.7


def cpu_s(ports: list[int]) -> list[float]:
    out = []
    for port in ports:
        with redis.Redis(port=port) as client:
            cpu = client.info("cpu")
        out.append(float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]))
    return out


def spread_streams(count: int, owners: list[tuple[int, int, int]]) -> list[str]:
    """``count`` stream names whose slots fall on different primaries in turn
    (``owners``: first slot, last slot, port)."""
    names, want, i = list[str](), 0, 0
    while len(names) < count:
        name = f"bench:p{i}"
        slot = key_slot(name.encode())
        port = next(p for first, last, p in owners if first <= slot <= last)
        if port == owners[want % len(owners)][2]:
            names.append(name)
            want += 1
        i += 1
    return names


def run(url: str, ports: list[int], streams: list[str], jobs: int) -> dict[str, float]:
    before = cpu_s(ports)
    for stream in streams:
        with Client.from_url(url, stream=stream) as client:
            for _ in range(0, jobs, BATCH):
                client.enqueue_many([NewJob("noop", {})] * BATCH)
    enqueued = cpu_s(ports)
    start = time.monotonic()
    command = [JOBQUEUE, "worker", "jobqueue.worker.testing:app", "--redis-url", url]
    command += ["--burst", "--http-port", "0", "--log-level", "WARNING"]
    workers = [
        subprocess.Popen([*command, "--stream", stream], stdout=subprocess.DEVNULL)
        for stream in streams
    ]
    for worker in workers:
        if worker.wait(timeout=600) != 0:
            raise RuntimeError(f"a worker exited {worker.returncode}")
    elapsed = time.monotonic() - start
    after = cpu_s(ports)
    total = jobs * len(streams)
    drain = [a - e for a, e in zip(after, enqueued, strict=True)]
    return {
        "cpu_us_per_job": (sum(after) - sum(before)) / total * 1e6,
        "drain_jobs_per_s": total / elapsed,
        "busiest_primary_share": max(drain) / elapsed,
    }


def flush(ports: list[int]) -> None:
    for port in ports:
        with redis.Redis(port=port) as client:
            client.flushall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per queue per round")
    parser.add_argument("--queues", type=int, default=3)
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
            with redis.Redis(port=primary_ports[0]) as client:
                slots = client.execute_command("CLUSTER SLOTS")
            owners = [(int(s[0]), int(s[1]), int(s[2][1])) for s in slots]
            streams = spread_streams(args.queues, owners)
            results: dict[str, list[dict[str, float]]] = {"1 primary": [], "3 primaries": []}
            for _ in range(args.rounds):
                for label, url, ports in (
                    ("1 primary", f"redis://127.0.0.1:{single.port}/0", [single.port]),
                    ("3 primaries", cluster.url, primary_ports),
                ):
                    flush(ports)
                    results[label].append(run(url, ports, streams, jobs))
        finally:
            single.stop()
            cluster.stop()
    report(results, args, jobs)


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, jobs: int) -> None:
    print(f"{args.queues} queues x {jobs} jobs, one burst worker per queue, {args.rounds} rounds")
    medians: dict[str, dict[str, float]] = {}
    for label, rounds in results.items():
        medians[label] = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        m = medians[label]
        print(
            f"{label:12} Redis CPU/job {m['cpu_us_per_job']:.1f} us   drain "
            f"{m['drain_jobs_per_s']:,.0f} jobs/s   busiest primary at "
            f"{m['busiest_primary_share']:.0%} of a core"
        )
    ratio = medians["3 primaries"]["drain_jobs_per_s"] / medians["1 primary"]["drain_jobs_per_s"]
    print(f"throughput ratio 3 primaries / 1 primary: {ratio:.2f}x")
    per_job = medians["3 primaries"]["cpu_us_per_job"]
    per_core = 1e6 / per_job
    at_target = per_core * TARGET_UTILISATION
    print(
        f"projection: {per_core:,.0f} jobs/s per primary core at 100 %, {at_target:,.0f} at "
        f"{TARGET_UTILISATION:.0%}; primaries for 1 M jobs/s: {math.ceil(1e6 / per_core)} "
        f"at 100 %, {math.ceil(1e6 / at_target)} at {TARGET_UTILISATION:.0%}"
    )


if __name__ == "__main__":
    main()
