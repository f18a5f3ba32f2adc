"""``jobqueue.worker.testing:app``: job types for tests and benchmarks.

============  ==============================  ==========================================
type          payload                         does
============  ==============================  ==========================================
``record``    ``{"into": KEY}``               ``HINCRBY KEY <job id> 1``
``noop``      anything                        nothing
``echo``      ``{"value": ANY, "ms": N?}``    returns ``value`` (the job's result), after
                                              N milliseconds
``sleep``     ``{"ms": N, "into": KEY?,       sleeps N milliseconds (asyncio), then records
              "starts": KEY?}``               like ``record``; ``starts`` as for ``hold``
``fail``      ``{"times": N?, "into": KEY?}`` fails while attempts made < N, then records
                                              like ``record``; no ``times``: always fails
``crash``     ``{"times": N?, "into": KEY?}`` ``os._exit(137)`` on the first N deliveries
                                              (counted in Redis), always without ``times``
``stamp``     ``{"into": KEY, "ms": N?}``     ``RPUSH KEY "start <time> <id> <attempts>"``,
                                              sleeps N ms, ``RPUSH KEY "end <time> <id>"``
                                              (wall-clock seconds: limiter tests)
``credit``    ``{"account": KEY, "amount":    adds ``amount`` to ``HGET KEY balance``
              N, "fail_after": N?}``          once per job, however often it runs; fails
                                              *after* its effect on the first
                                              ``fail_after`` attempts (the idempotency
                                              pattern of the README)
``hold``      ``{"until": KEY, "into": KEY?,  waits until KEY exists (polled every 50 ms,
                                              through dropped connections),
              "starts": KEY?}``               then records like ``record``; ``starts``:
                                              ``RPUSH KEY "<job id> <attempt> <pid>
                                              <epoch s>"`` at its start
============  ==============================  ==========================================
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from redis.exceptions import ConnectionError, TimeoutError

from jobqueue.core.errors import Fatal
from jobqueue.worker.app import App, JobContext

app = App("jobqueue-testing")

HOLD_POLL_S = 0.05
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


@app.handler("echo")
async def echo(ctx: JobContext) -> object:
    """Returns the payload's ``value`` (its result), after ``ms`` milliseconds if given."""
    await asyncio.sleep((_int(ctx.payload, "ms") or 0) / 1000)
    return ctx.payload.get("value")


async def _started(ctx: JobContext) -> None:
    starts = ctx.payload.get("starts")
    if starts is None:
        return
    if not isinstance(starts, str) or not starts:
        raise Fatal(f"payload field 'starts' must be a key name, got {starts!r}")
    await ctx.redis.rpush(starts, f"{ctx.job.id} {ctx.attempt} {os.getpid()} {time.time():.3f}")


@app.handler("sleep")
async def sleep(ctx: JobContext) -> None:
    await _started(ctx)
    await asyncio.sleep((_int(ctx.payload, "ms") or 0) / 1000)
    await _record(ctx)


@app.handler("stamp")
async def stamp(ctx: JobContext) -> None:
    key = ctx.payload.get("into")
    if not isinstance(key, str) or not key:
        raise Fatal("stamp needs payload field 'into'")
    await ctx.redis.rpush(key, f"start {time.time():.6f} {ctx.job.id} {ctx.job.attempts}")
    await asyncio.sleep((_int(ctx.payload, "ms") or 0) / 1000)
    await ctx.redis.rpush(key, f"end {time.time():.6f} {ctx.job.id}")


@app.handler("fail")
async def fail(ctx: JobContext) -> None:
    times = _int(ctx.payload, "times")
    if times is None or ctx.job.attempts < times:
        raise RuntimeError(f"failing on purpose (attempt {ctx.attempt})")
    await _record(ctx)


# The effect and the mark that it was applied, in one atomic step keyed by the job id:
# a second run of the same job (a retry after a timeout, a reclaim after a crash, an
# attempt whose reply was lost) finds the mark and changes nothing.
CREDIT_ONCE = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'balance', ARGV[2])
return 1
"""
APPLIED_TTL_S = 7 * 24 * 3600
"""How long the marks are kept: longer than any job is retried."""


@app.handler("credit")
async def credit(ctx: JobContext) -> None:
    account, amount = ctx.payload.get("account"), _int(ctx.payload, "amount")
    if not isinstance(account, str) or not account or amount is None:
        raise Fatal("credit needs payload fields 'account' (a key) and 'amount'")
    keys = [account, f"{account}:applied"]
    await ctx.redis.eval(CREDIT_ONCE, 2, *keys, ctx.job_id, amount, APPLIED_TTL_S)
    if ctx.job.attempts < (_int(ctx.payload, "fail_after") or 0):
        raise RuntimeError(f"failing after the effect (attempt {ctx.attempt})")


@app.handler("hold", timeout_s=3600)
async def hold(ctx: JobContext) -> None:
    until = ctx.payload.get("until")
    if not isinstance(until, str) or not until:
        raise Fatal(f"hold needs payload field 'until' (a key name), got {until!r}")
    await _started(ctx)
    while True:
        try:
            if await ctx.redis.exists(until):
                break
        except (ConnectionError, TimeoutError):
            pass  # a dropped connection (the chaos tests kill them) is no reason to fail
        await asyncio.sleep(HOLD_POLL_S)
    await _record(ctx)


@app.handler("crash")
async def crash(ctx: JobContext) -> None:
    times = _int(ctx.payload, "times")
    deliveries = await ctx.redis.hincrby(CRASH_COUNTS_KEY, ctx.job.id, 1)
    if times is None or deliveries <= times:
        os._exit(137)
    await _record(ctx)
