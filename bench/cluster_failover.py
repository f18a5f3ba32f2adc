"""Redis Cluster primary killed under enqueue load: accepted jobs lost, per mode.

Each round starts its own cluster (tests/support/redis_cluster.py: 3 primaries, 1 replica
each, cluster-node-timeout 2000 ms, loopback ports) and ``--callers`` concurrent
enqueuers on one Python client (`AsyncClient`, the producer's own enqueue path), each
enqueueing single jobs one after another. After ``--before`` accepted jobs the primary
owning the queue's slot is SIGKILLed; once its replica is promoted the killed server is
started again (as a pod restart would: it rejoins as the new primary's replica), and
enqueueing goes on until ``--after`` more were accepted. Then the new primary's stream is
read: a job accepted (answered without an error) and not there is lost. Modes,
alternating per round:

- ``plain``: ``JOBQUEUE_ENQUEUE_MIN_REPLICAS=0`` (the default);
- ``wait``: ``JOBQUEUE_ENQUEUE_MIN_REPLICAS=1`` (timeout 500 ms).

Printed per round: jobs accepted per second before the kill, accepted, lost,
unconfirmed answers (`EnqueueUnconfirmed`), other errors (Redis unavailable), failover
time (kill -> the replica says it is primary) and resume (kill -> the first enqueue
started after the kill and accepted). Nothing here is pass/fail: tests/cluster asserts.

    .venv/bin/python bench/cluster_failover.py [--rounds 2] [--before 3000] [--after 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from redis.exceptions import RedisError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.redis_cluster import RedisCluster  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402

from jobqueue.core.client import AsyncClient  # noqa: E402
from jobqueue.core.errors import EnqueueUnconfirmed  # noqa: E402

MODES = {"plain": 0, "wait": 1}
STREAM = "bench:work"


@dataclass
class Round:
    accepted: list[str] = field(default_factory=list)
    unconfirmed: int = 0
    errors: int = 0
    rate_per_s: float = 0.0
    failover_s: float = 0.0
    resume_s: float = float("nan")
    lost: int = 0


async def _enqueuer(
    client: AsyncClient, result: Round, stop: asyncio.Event, kill: list[float]
) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            job = await client.enqueue("noop", {})
        except EnqueueUnconfirmed:
            result.unconfirmed += 1
            await asyncio.sleep(0.05)
            continue
        except RedisError:
            result.errors += 1
            await asyncio.sleep(0.05)
            continue
        result.accepted.append(job.job_id)
        if kill and started > kill[0] and result.resume_s != result.resume_s:
            result.resume_s = time.monotonic() - kill[0]


async def _wait_for(condition: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the round did not progress")
        await asyncio.sleep(0.02)


async def run_round(mode: str, callers: int, before: int, after: int) -> Round:
    cluster = RedisCluster(Path(tempfile.mkdtemp(prefix="cluster-failover-")))
    cluster.start()
    result = Round()
    try:
        owner = cluster.owner(STREAM)
        replica = cluster.replica_of(owner)
        await _wait_for(lambda: _synced(cluster, owner))
        client = AsyncClient.from_url(
            cluster.url,
            stream=STREAM,
            enqueue_min_replicas=MODES[mode],
            enqueue_replicas_timeout_ms=500,
        )
        stop, kill = asyncio.Event(), list[float]()
        started = time.monotonic()
        tasks = [asyncio.create_task(_enqueuer(client, result, stop, kill)) for _ in range(callers)]
        await _wait_for(lambda: len(result.accepted) >= before)
        result.rate_per_s = len(result.accepted) / (time.monotonic() - started)
        mark = len(result.accepted)
        kill.append(time.monotonic())
        owner.kill()
        await _wait_for(lambda: _role(cluster, replica.port) == "master")
        result.failover_s = time.monotonic() - kill[0]
        owner.start()  # rejoins as the new primary's replica
        await _wait_for(lambda: len(result.accepted) >= mark + after)
        stop.set()
        await asyncio.gather(*tasks)
        await client.aclose()
        await asyncio.to_thread(cluster.wait_ok)
        with cluster.client(cluster.owner(STREAM).port) as node:
            stored = {fields["id"] for _, fields in node.xrange(STREAM)}
        result.lost = len(set(result.accepted) - stored)
    finally:
        cluster.stop()
    return result


def _role(cluster: RedisCluster, port: int) -> str:
    try:
        with cluster.client(port) as client:
            return str(client.info("replication")["role"])
    except RedisError:
        return "down"


def _synced(cluster: RedisCluster, owner: RedisServer) -> bool:
    with cluster.client(owner.port) as client:
        info = client.info("replication")
    return bool(info.get("slave0", {}).get("state") == "online")


HEADER = "mode   jobs/s accepted  lost unconfirmed errors failover_s resume_s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--before", type=int, default=3000, help="jobs accepted before the kill")
    parser.add_argument("--after", type=int, default=2000, help="jobs accepted after it")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated")
    args = parser.parse_args()
    modes = args.modes.split(",")
    print(HEADER)
    totals: dict[str, list[Round]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):
        for mode in modes:
            r = asyncio.run(run_round(mode, args.callers, args.before, args.after))
            totals[mode].append(r)
            print(
                f"{mode:6} {r.rate_per_s:6.0f} {len(r.accepted):8d} {r.lost:5d} "
                f"{r.unconfirmed:11d} {r.errors:6d} {r.failover_s:10.2f} {r.resume_s:8.2f}",
                flush=True,
            )
    for mode, rounds in totals.items():
        print(
            f"{mode}: {sum(len(r.accepted) for r in rounds)} accepted, "
            f"{sum(r.lost for r in rounds)} lost over {len(rounds)} rounds"
        )


if __name__ == "__main__":
    main()
