"""Waiting for a job's outcome without polling: the waiting set and the settled stream.

A waiter registers interest (``ZADD {tag}:waiting GT <end ms> <status key>``) and, in the
same MULTI, notes the last entry of ``{tag}:settled``; then it reads the job's status. The
scripts that settle a job (the worker's success flush, dead letter and cancellation, the
client's cancel) announce it with ``XADD {tag}:settled`` only when its status key is in
the waiting set (`ANNOUNCE_LUA`), so a job no one waits for costs one ``ZCARD`` per
flush and nothing per job. The waiter blocks on the stream after the noted entry:

- a job that settled before the registration shows in the status read;
- one that settles after it is announced after the noted entry, so the block sees it.

Other ways a job ends (dead-lettered as poison at take-over, or as malformed at
promotion) are not announced: the waiter reads the status again every
`RECHECK_S`, which also covers an announcement trimmed away by the stream's cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ResponseError

from jobqueue.core.keys import QueueKeys
from jobqueue.core.status import TERMINAL_STATES

RECHECK_S = 2.0
POLL_S = 0.25
"""How often a waiter reads the status when it cannot use the waiting set (`_poll`)."""
"""Longest a waiter blocks before it reads the status again, seconds."""
SETTLED_MAXLEN = 1000
"""About how many announcements the settled stream keeps (``MAXLEN ~``)."""

# Lua for the scripts that settle a job: KEYS of theirs give `waiting` and `settled`.
# ``announce`` costs a ZSCORE; a script with many jobs checks ``anyone_waits`` once first.
ANNOUNCE_LUA = f"""
local function anyone_waits(waiting)
  local n = redis.pcall('ZCARD', waiting)
  return type(n) == 'number' and n > 0  -- a foreign key there: nobody of ours waits
end
-- A waiting or settled key another application holds as another type is left alone:
-- nobody of ours can wait there, and the outcome must not fail on it.
local function announce(waiting, settled, key, state)
  local kind = redis.call('TYPE', settled)['ok']
  if kind ~= 'none' and kind ~= 'stream' then return end
  if type(redis.pcall('ZSCORE', waiting, key)) == 'string' then
    redis.call('ZREM', waiting, key)
    redis.call('XADD', settled, 'MAXLEN', '~', '{SETTLED_MAXLEN}', '*', 'key', key,
      'state', state)
  end
end
"""

Read = Callable[[], Awaitable[Any]]


async def wait_settled(
    redis: AsyncRedis, keys: QueueKeys, job_id: str, timeout_s: float, read: Read
) -> Any:
    """Block until ``job_id`` settles or ``timeout_s`` passes; returns ``read()`` (the
    job's current status) at that moment. ``read`` must return an object with a
    ``state`` attribute, or None for an unknown job (returned at once)."""
    key = keys.status(job_id)
    ends = time.monotonic() + max(timeout_s, 0.0)
    now_ms = int(time.time() * 1000)
    # The settled stream's last entry seen; None: read the status now and then instead.
    last: str | None = None
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(keys.waiting, "-inf", now_ms)
            pipe.zadd(keys.waiting, {key: now_ms + int(timeout_s * 1000) + 1000}, gt=True)
            pipe.xrevrange(keys.settled, count=1)
            *_, last_rows = await pipe.execute()
        last = last_rows[0][0] if last_rows else "0-0"
    except ResponseError as exc:
        _raise_unless_foreign(exc)
    while True:
        info = await read()
        left = ends - time.monotonic()
        if info is None or info.state in TERMINAL_STATES or left <= 0:
            return info
        if last is None:
            await asyncio.sleep(min(left, POLL_S))
            continue
        try:
            last = await _block(redis, keys.settled, key, last, min(left, RECHECK_S))
        except ResponseError as exc:
            _raise_unless_foreign(exc)
            last = None


def _raise_unless_foreign(exc: ResponseError) -> None:
    """Another application holding the waiting set or the settled stream as another type
    (the outcome scripts leave them alone) leaves the waiter polling; anything else is
    raised."""
    if "WRONGTYPE" not in str(exc):
        raise exc


async def _block(redis: AsyncRedis, settled: str, key: str, last: str, block_s: float) -> str:
    """Block on the settled stream after ``last`` until ``key`` is announced or
    ``block_s`` passes; returns the last entry id seen."""
    ends = time.monotonic() + block_s
    while (left_ms := int((ends - time.monotonic()) * 1000)) > 0:
        reply = cast(list[Any], await redis.xread({settled: last}, count=100, block=left_ms))
        if not reply:
            return last
        for entry_id, fields in reply[0][1]:
            last = entry_id
            if fields.get("key") == key:
                return last
    return last
