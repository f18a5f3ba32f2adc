"""Operator benchmark: time from a burst to the scaling decision, and CPU per JobQueue per poll.

Runs the real operator (Kopf, in its own thread and event loop, as in the tests) against
kmock's Kubernetes API emulator over HTTP and a private redis-server:

1. **burst → decision**: one JobQueue at zero replicas, ``pollIntervalSeconds`` 1; a
   burst of jobs is written at a random moment relative to the poll; the clock stops
   when the worker Deployment's ``spec.replicas`` changes in the API (polled every 5 ms).
   Repeated ``--trials`` times (the queue is drained and scaled back to zero between).
2. **CPU per JobQueue per poll**: ``--queues`` JobQueues, each with a backlog, polled
   every second for ``--seconds``; the operator thread's CPU time (its own clock, so the
   emulator and Redis are not counted) divided by the number of polls it made.

    .venv/bin/python bench/operator_scaling.py [--trials 10] [--queues 20] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.kube_emulator import (
    DEPLOYMENTS,
    NAMESPACE,
    KubeEmulator,
    apply,
    jobqueue,
    start_emulator,
)
from support.redis_server import RedisServer

from jobqueue.operator.controller import run_operator
from jobqueue.operator.scaler import OperatorContext
from jobqueue.operator.settings import OperatorSettings

POLL_S = 1.0


class OperatorThread:
    """The operator on its own loop in a thread; its CPU clock measures only it."""

    def __init__(self, url: str) -> None:
        settings = OperatorSettings(http_port=0, standalone=True, status_interval_s=5.0)
        self.ctx = OperatorContext(settings=settings)
        self.stop, self.ready = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(url,), daemon=True)

    def _run(self, url: str) -> None:
        asyncio.run(run_operator(self.ctx, server=url, stop_flag=self.stop, ready_flag=self.ready))

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("operator did not start")

    def cpu_s(self) -> float:
        assert self.thread.ident is not None
        return time.clock_gettime(time.pthread_getcpuclockid(self.thread.ident))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


def replicas(kube: KubeEmulator, name: str) -> int | None:
    found = kube.get(DEPLOYMENTS, NAMESPACE, f"{name}-worker")
    return None if found is None else int(found["spec"]["replicas"])


async def wait_for(check: Any, timeout_s: float = 60.0, step_s: float = 0.005) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(step_s)


async def burst_to_decision(kube: KubeEmulator, redis: Redis, url: str, trials: int) -> list[float]:
    scaling = {
        "pollIntervalSeconds": POLL_S,
        "scaleDownStabilizationSeconds": 0,
        "idleSecondsBeforeZero": 0,
        "lagPerReplica": 10,
        "maxReplicas": 10,
    }
    await apply(kube, jobqueue("burst", url, scaling=scaling))
    await wait_for(lambda: replicas(kube, "burst") == 0)
    latencies = []
    for _ in range(trials):
        # A random phase against the poll, as real bursts have.
        await asyncio.sleep(random.uniform(0, POLL_S))
        started = time.monotonic()
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(100):
                pipe.xadd("burst:work", {"type": "noop", "payload": "{}", "id": str(i)})
            await pipe.execute()
        await wait_for(lambda: (replicas(kube, "burst") or 0) > 0)
        latencies.append(time.monotonic() - started)
        await redis.delete("burst:work")  # drain: the queue is idle again
        await redis.xgroup_create("burst:work", "workers", id="0", mkstream=True)
        await wait_for(lambda: replicas(kube, "burst") == 0)
    return latencies


async def cpu_per_poll(
    kube: KubeEmulator,
    redis: Redis,
    url: str,
    operator: OperatorThread,
    queues: int,
    seconds: float,
) -> tuple[float, int]:
    scaling = {"pollIntervalSeconds": POLL_S, "lagPerReplica": 10, "maxReplicas": 10}
    for i in range(queues):
        name = f"q{i}"
        await redis.xadd(f"{name}:work", {"type": "noop", "payload": "{}"})
        await apply(kube, jobqueue(name, url, scaling=scaling))
    await wait_for(lambda: all(replicas(kube, f"q{i}") == 1 for i in range(queues)))
    polls_before = sum(operator.ctx.polls.values())
    cpu_before = operator.cpu_s()
    await asyncio.sleep(seconds)
    polls = sum(operator.ctx.polls.values()) - polls_before
    return (operator.cpu_s() - cpu_before) / max(polls, 1), polls


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            async for kube in start_emulator():
                operator = OperatorThread(kube.url)
                operator.start()
                redis = Redis.from_url(server.url, decode_responses=True)
                try:
                    latencies = await burst_to_decision(kube, redis, server.url, args.trials)
                    cpu, polls = await cpu_per_poll(
                        kube, redis, server.url, operator, args.queues, args.seconds
                    )
                finally:
                    await redis.aclose()
                    operator.close()
        finally:
            server.stop()
    latencies.sort()
    print(f"burst -> scaling decision at a {POLL_S:g} s poll interval, {len(latencies)} trials:")
    print(
        f"  median {statistics.median(latencies):.3f} s, "
        f"p90 {latencies[int(0.9 * (len(latencies) - 1))]:.3f} s, max {latencies[-1]:.3f} s"
    )
    print(
        f"operator CPU: {cpu * 1000:.2f} ms per JobQueue per poll "
        f"({args.queues} JobQueues, {polls} polls)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    asyncio.run(main(parser.parse_args()))
