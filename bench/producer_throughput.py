"""Producer throughput: enqueue rates of jobqueue against raw pipelined ``XADD``.

All in one invocation against one private redis-server the benchmark starts (no
persistence), each measured as jobs per second:

1. raw: redis-py pipelines of ``XADD`` (``--batch`` per round trip) of SPEC §2 entries,
   each job's fields built as any producer must (ULID, JSON payload, timestamp);
2. client batch: ``jobqueue.core.client.Client.enqueue_many`` with ``--batch`` jobs per
   call (one Lua call: XADD + status record with TTL per job);
3. HTTP batch: ``POST /jobs/batch`` of ``--batch`` jobs to one ``jobqueue producer``
   process (JSON parsing, pydantic and JSON Schema validation, the same Lua call),
   ``--concurrency`` requests in flight;
4. HTTP single: ``POST /jobs`` of one job each to the same process, ``--concurrency``
   requests in flight from an aiohttp client in this process.

The four run back to back in each of ``--rounds`` rounds; each method is printed with
its best rate, the median over rounds of its ratio to (1) in the same round (robust to
a machine whose load drifts), and the CPU it costs per job: Redis's (``INFO cpu``) plus
the producer process's plus, for (1) and (2), this process's; the HTTP load
generator's CPU is left out. ``jobs/CPU-s ratio`` compares that cost with (1)'s, which
does not depend on what else the machine is doing.

    .venv/bin/python bench/producer_throughput.py [--jobs 20000] [--batch 500]
        [--requests 2000] [--concurrency 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson
import redis
from redis.typing import EncodableT, FieldT
from ulid import ULID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.redis_server import RedisServer, free_port  # noqa: E402

from jobqueue.core.client import Client, NewJob  # noqa: E402
from jobqueue.core.settings import QueueSettings  # noqa: E402

STREAM = "bench:work"
PAYLOAD = {"to": "user@example.com", "template": "welcome"}
JOB = {"type": "email", "payload": PAYLOAD}


def raw_xadd(client: redis.Redis, jobs: int, batch: int) -> float:
    """Seconds to XADD ``jobs`` SPEC §2 entries in pipelines of ``batch``."""
    started = time.perf_counter()
    for start in range(0, jobs, batch):
        with client.pipeline(transaction=False) as pipe:
            for _ in range(min(batch, jobs - start)):
                now = datetime.now(UTC).isoformat(timespec="milliseconds")
                fields: dict[FieldT, EncodableT] = {
                    "id": str(ULID()),
                    "type": "email",
                    "payload": orjson.dumps(PAYLOAD).decode(),
                    "priority": "5",
                    "enqueued_at": now.replace("+00:00", "Z"),
                    "attempts": "0",
                }
                pipe.xadd(STREAM, fields)
            pipe.execute()
    return time.perf_counter() - started


def client_batches(url: str, jobs: int, batch: int) -> float:
    """Seconds for `Client.enqueue_many` to enqueue ``jobs`` in calls of ``batch``."""
    with Client(QueueSettings(redis_url=url, stream=STREAM)) as client:
        started = time.perf_counter()
        for start in range(0, jobs, batch):
            client.enqueue_many([NewJob("email", PAYLOAD)] * min(batch, jobs - start))
        return time.perf_counter() - started


async def http_load(url: str, bodies: list[bytes], path: str, concurrency: int) -> float:
    """Seconds to POST every body to ``url + path``, ``concurrency`` at a time; all 202."""
    queue = list(reversed(bodies))
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                async with session.post(url + path, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 202:
                        raise RuntimeError(f"{path}: HTTP {response.status}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def start_producer(redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "JOBQUEUE_STREAM": STREAM}
    env.update(JOBQUEUE_PRODUCER_HOST="127.0.0.1", JOBQUEUE_PRODUCER_PORT=str(port))
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("jobqueue")), "producer"], env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError("producer did not start")


RAW = "raw pipelined XADD (redis-py)"


class Meter:
    """CPU seconds spent enqueueing: Redis's own, the producer process's, and (for the
    in-process methods) this process's; the HTTP load generator's CPU is not counted."""

    def __init__(self, client: redis.Redis, producer_pid: int) -> None:
        self.client = client
        self.producer_pid = producer_pid

    def cpu_s(self, *, with_self: bool) -> float:
        info = self.client.info("cpu")
        spent = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        spent += proc_cpu_s(self.producer_pid)
        return spent + (time.process_time() if with_self else 0.0)


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc)."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def one_round(
    meter: Meter, redis_url: str, url: str, args: argparse.Namespace
) -> dict[str, tuple[float, float]]:
    """(jobs per second, CPU µs per job) of each way to enqueue, the stream emptied
    between them."""
    client = meter.client
    batches = [orjson.dumps({"jobs": [JOB] * args.batch})] * (args.jobs // args.batch)
    singles = [orjson.dumps(JOB)] * args.requests
    runs: dict[str, tuple[int, bool, Callable[[], float]]] = {
        RAW: (args.jobs, True, lambda: raw_xadd(client, args.jobs, args.batch)),
        "Client.enqueue_many": (
            args.jobs,
            True,
            lambda: client_batches(redis_url, args.jobs, args.batch),
        ),
        "HTTP POST /jobs/batch": (
            len(batches) * args.batch,
            False,
            lambda: asyncio.run(http_load(url, batches, "/jobs/batch", 4)),
        ),
        "HTTP POST /jobs (one job each)": (
            args.requests,
            False,
            lambda: asyncio.run(http_load(url, singles, "/jobs", args.concurrency)),
        ),
    }
    results = {}
    for name, (jobs, with_self, run) in runs.items():
        client.flushall()
        cpu_before = meter.cpu_s(with_self=with_self)
        seconds = run()
        cpu_per_job_us = (meter.cpu_s(with_self=with_self) - cpu_before) / jobs * 1e6
        if client.xlen(STREAM) != jobs:
            raise RuntimeError(f"{name}: not every job was enqueued")
        results[name] = (jobs / seconds, cpu_per_job_us)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per batch benchmark")
    parser.add_argument("--batch", type=int, default=500, help="jobs per round trip")
    parser.add_argument("--requests", type=int, default=2_000, help="single-job POSTs")
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP requests in flight")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of all four")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory))
        server.start()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        process, url = start_producer(server.url)
        try:
            raw_xadd(client, min(args.jobs, 5000), args.batch)  # warm up
            meter = Meter(client, process.pid)
            rounds = [one_round(meter, server.url, url, args) for _ in range(args.rounds)]
        finally:
            process.terminate()
            process.wait(timeout=30)
            client.close()
            server.stop()

    print(f"conditions: {os.cpu_count()} CPUs, jobs={args.jobs} batch={args.batch} "
          f"requests={args.requests} concurrency={args.concurrency} (batch POSTs: "
          f"{min(args.concurrency, 4)} in flight), {args.rounds} rounds")  # fmt: skip
    columns = ("best jobs/s", "ratio to raw", "CPU µs/job", "jobs/CPU-s ratio")
    print(f"{'':32s} {columns[0]:>11s} {columns[1]:>13s} {columns[2]:>11s} {columns[3]:>17s}")
    for name in rounds[0]:
        best = max(r[name][0] for r in rounds)
        ratio = statistics.median(r[name][0] / r[RAW][0] for r in rounds)
        cpu_us = statistics.median(r[name][1] for r in rounds)
        cpu_ratio = statistics.median(r[RAW][1] / r[name][1] for r in rounds)
        print(f"{name:32s} {best:11.0f} {ratio:13.2f} {cpu_us:11.1f} {cpu_ratio:17.2f}")


if __name__ == "__main__":
    main()
