"""Where Redis's CPU goes in an enqueue: the shipped ENQUEUE script against its floors.

One private redis-server, all in this invocation, alternating per round; each variant
enqueues the same kind of fresh jobs (SPEC §2 fields, client-made ids, no idempotency
key, no delay) in batches of ``--batch``, and the figure is redis-server's CPU per job
(``INFO cpu`` deltas), printed as a ratio to the first:

1. **raw**: pipelined ``XADD`` of the same fields (the floor of any Streams queue);
2. **lua xadd**: one script call per batch, the fields as plain arguments, only the
   ``XADD`` from Lua: what calling Redis from a script costs over a pipeline;
3. **lua xadd + queued**: the same plus the ``queued`` index (``HSET`` job id -> entry
   id) that status lookups and cancels of waiting jobs need;
4. **ENQUEUE**: the shipped script (`jobqueue.core.scripts.ENQUEUE`) as the client calls
   it: a job's fields as plain arguments, one reply element a job.

    .venv/bin/python bench/enqueue_script_cost.py [--jobs 20000] [--batch 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.redis_server import RedisServer  # noqa: E402

from jobqueue.core import scripts  # noqa: E402
from jobqueue.core.client_types import NewJob, enqueue_arg  # noqa: E402
from jobqueue.core.keys import QueueKeys  # noqa: E402

KEYS = QueueKeys("bench:work", "workers")
PAYLOAD = {"to": "a@example.com", "template": "hi"}
LUA_XADD = """#!lua
local out = {}
local i, n = 1, #ARGV
while i <= n do
  local count = tonumber(ARGV[i + 1])
  local entry_id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, i + 2, i + 1 + count))
  if KEYS[1] ~= '' and KEYS[1] ~= KEYS[2] then redis.call('HSET', KEYS[1], ARGV[i], entry_id) end
  out[#out + 1] = entry_id
  i = i + 2 + count
end
return out
"""

Batch = list[tuple[str, list[str], list[str]]]
"""Per job: its id, its ENQUEUE arguments, its fields as a flat list."""


def batch(size: int) -> Batch:
    jobs: Batch = []
    for _ in range(size):
        job_id, args = enqueue_arg(NewJob("email", PAYLOAD), int(time.time() * 1000))
        jobs.append((job_id, args, args[3:]))
    return jobs


def raw(client: redis.Redis, jobs: Batch) -> None:
    with client.pipeline(transaction=False) as pipe:
        for _, _, flat in jobs:
            pipe.execute_command("XADD", KEYS.stream, "*", *flat)
        pipe.execute()


def lua(with_queued: bool) -> Callable[[redis.Redis, Batch], None]:
    def call(client: redis.Redis, jobs: Batch) -> None:
        args: list[str] = []
        for job_id, _, flat in jobs:
            args += (job_id, str(len(flat)), *flat)
        index = KEYS.queued if with_queued else KEYS.stream
        client.eval(LUA_XADD, 2, index, KEYS.stream, *args)

    return call


def enqueue_script(client: redis.Redis, jobs: Batch) -> None:
    keys = [KEYS.delayed, KEYS.delayed_jobs, KEYS.queued, KEYS.stream]
    head = ["86400", "86400", "2026-11-30T00:00:00.000Z", str(int(time.time() * 1000))]
    head += ["0", "0", "1", ""]  # no deadline, no lookups, one ready stream (the queue's)
    args = [arg for _, job_args, _ in jobs for arg in job_args]
    client.eval(scripts.ENQUEUE, len(keys), *keys, *head, *args)


def cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    variants: dict[str, Callable[[redis.Redis, Batch], None]] = {
        "raw XADD pipelined": raw,
        "lua xadd": lua(False),
        "lua xadd + queued": lua(True),
        "ENQUEUE (shipped)": enqueue_script,
    }
    per_job: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="jobqueue-enqueue-cost-") as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        try:
            client = redis.Redis.from_url(server.url)
            batches = [batch(args.batch) for _ in range(args.jobs // args.batch)]
            for _ in range(args.rounds):
                for name, run in variants.items():
                    client.flushdb()
                    before = cpu_s(client)
                    for jobs in batches:
                        run(client, jobs)
                    per_job[name].append((cpu_s(client) - before) * 1e6 / args.jobs)
            client.close()
        finally:
            server.stop()
    base = statistics.median(per_job["raw XADD pipelined"])
    print(f"{args.jobs} fresh jobs x {args.rounds} rounds, batches of {args.batch}")
    print("Redis CPU per job (INFO cpu, median over rounds), and its ratio to raw:")
    for name, values in per_job.items():
        median = statistics.median(values)
        print(f"  {name:<20} {median:6.2f} us   x{median / base:.2f}")


if __name__ == "__main__":
    main()
