"""CPU per round trip of the worker's hot request: its own connection vs redis-py.

The request the reader sends once per batch is the acknowledgement flush (``EVAL`` of
`scripts.FLUSH`, here with nothing to flush) plus a non-blocking ``XREADGROUP``. Sent
through redis-py's asyncio pipeline (the baseline) and through
`jobqueue.worker.hot_connection.HotConnection`, alternately, against one private
redis-server, under uvloop as in the worker. Prints the worker process's CPU per round
trip (``time.process_time``: Redis's own time is not counted) and the ratio.

    .venv/bin/python bench/hot_path_round_trip.py [--calls 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from jobqueue.core.connection import async_redis
from jobqueue.worker import scripts
from jobqueue.worker.hot_connection import HotConnection

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.redis_server import RedisServer  # noqa: E402

STREAM, GROUP = "bench:work", "workers"
FLUSH_ARGS = [GROUP, 60, "2026-01-01T00:00:00.000Z", "[]", "[]", "[]"]


async def main(url: str, calls: int, rounds: int) -> None:
    redis = async_redis(url)
    await redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    hot = HotConnection(url)
    await hot.connect()
    read = ("XREADGROUP", "GROUP", GROUP, "c", "COUNT", 32, "STREAMS", STREAM, ">")
    pipeline_us, hot_us = [], []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            async with redis.pipeline(transaction=False) as pipe:
                pipe.eval(scripts.FLUSH, 1, STREAM, *FLUSH_ARGS)
                pipe.xreadgroup(GROUP, "c", {STREAM: ">"}, count=32)
                await pipe.execute()
        pipeline_us.append((time.process_time() - started) / calls * 1e6)
        started = time.process_time()
        for _ in range(calls):
            await hot.call(("EVAL", scripts.FLUSH, 1, STREAM, *FLUSH_ARGS), read, timeout_s=5)
        hot_us.append((time.process_time() - started) / calls * 1e6)
    hot.close()
    await redis.aclose()
    base, ours = statistics.median(pipeline_us), statistics.median(hot_us)
    print(f"redis-py pipeline   {base:6.0f} us CPU per round trip (median of {rounds})")
    print(f"hot connection      {ours:6.0f} us CPU per round trip ({ours / base:.2f}x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            uvloop.run(main(server.url, args.calls, args.rounds))
        finally:
            server.stop()
