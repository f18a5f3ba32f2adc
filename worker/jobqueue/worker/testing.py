"""``jobqueue.worker.testing:app``: job types for tests and benchmarks.

============  ==============================  ==========================================
type          payload                         does
============  ==============================  ==========================================
``record``    ``{"into": KEY}``               ``HINCRBY KEY <job id> 1``
``noop``      anything                        nothing
``sleep``     ``{"ms": N}``                   sleeps N milliseconds (asyncio)
``fail``      ``{"times": N?, "into": KEY?}`` fails while attempts made < N, then records
                                              like ``record``; no ``times``: always fails
``crash``     ``{"times": N?, "into": KEY?}`` ``os._exit(137)`` on the first N deliveries
                                              (counted in Redis), always without ``times``
============  ==============================  ==========================================
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jobqueue.core.errors import Fatal
from jobqueue.worker.app import App, JobContext

app = App("jobqueue-testing")

CRASH_COUNTS_KEY = "jobqueue:testing:crashes"
"""Hash job id -> how often a ``crash`` job was delivered (survives the crashes)."""


def _int(payload: dict[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Fatal(f"payload field {name!r} must be a non-negative integer, got {value!r}")
    return value


async def _record(ctx: JobContext) -> None:
    key = ctx.payload.get("into")
    if key is None:
        return
    if not isinstance(key, str) or not key:
        raise Fatal(f"payload field 'into' must be a key name, got {key!r}")
    await ctx.redis.hincrby(key, ctx.job.id, 1)


@app.handler("record")
async def record(ctx: JobContext) -> None:
    if "into" not in ctx.payload:
        raise Fatal("record needs payload field 'into'")
    await _record(ctx)


@app.handler("noop")
async def noop(ctx: JobContext) -> None:
    return None


@app.handler("sleep")
async def sleep(ctx: JobContext) -> None:
    await asyncio.sleep((_int(ctx.payload, "ms") or 0) / 1000)


@app.handler("fail")
async def fail(ctx: JobContext) -> None:
    times = _int(ctx.payload, "times")
    if times is None or ctx.job.attempts < times:
        raise RuntimeError(f"failing on purpose (attempt {ctx.attempt})")
    await _record(ctx)


@app.handler("crash")
async def crash(ctx: JobContext) -> None:
    times = _int(ctx.payload, "times")
    deliveries = await ctx.redis.hincrby(CRASH_COUNTS_KEY, ctx.job.id, 1)
    if times is None or deliveries <= times:
        os._exit(137)
    await _record(ctx)
