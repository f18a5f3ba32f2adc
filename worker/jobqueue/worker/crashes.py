"""Crash accounting: how often a job was started by a worker that then died.

Redis's delivery counter is not that number: it also grows when a consumer re-reads its
own pending list after a reconnect, for read-ahead that never started and for entries
claimed and never run. So each worker process records what it started, and the entries
of a dead worker are blamed from those records when they are taken over (reclaimed by
another worker, or drained by the same pod restarted):

- ``{stream}:started`` holds, per consumer, the last entry id it started and the token
  of the process that did. Entries are read in stream order, so every entry of the
  consumer's pending list up to that id was started, and read-ahead beyond it was not.
  The hot path sends the record in the same write as its next read (or alone if no read
  goes out), before the batch's handlers run: no round trip of its own, one ``HSET`` per
  batch.
- ``{stream}:crashes`` counts, per entry, the deaths it was blamed for. An entry with a
  count is a *suspect*: a worker runs its suspects one at a time (`solo`), and while
  one runs ``{stream}:solo`` names it.
- A take-over (`TAKE`, one script: find, blame, claim, record) blames an entry of a
  dead process when the owner's solo record names it, or when it is no suspect and not
  beyond the owner's last start. Suspects waiting for their turn are never blamed, so
  an innocent job is blamed at most once for another job's crash. The same process
  re-reading its own entries (a reconnect) blames nothing, and a graceful stop deletes
  its records (`FORGET`), so entries it leaves pending are never blamed.

A job that kills its worker before the record of its batch reached Redis escapes one
count; from its first take-over on it is taken with the script, which records the start
before anything runs, so it is dead-lettered after at most ``max_deliveries`` + 1 crashes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ResponseError

from jobqueue.core.keys import QueueKeys
from jobqueue.core.scripts import OWN_KEYS_LUA
from jobqueue.worker.resilience import persist

log = logging.getLogger("jobqueue.worker")

Taken = tuple[str, dict[str, str], int]
"""(entry id, fields, crashes) of an entry taken over."""
TAKE_LIMIT = 1000
"""Most entries one take-over call claims (bounds the script's work and reply)."""

# KEYS: stream, started, solo, crashes. ARGV: group, consumer, token, min_idle_ms ('' =
# this consumer's own entries, any idle), start id, count, this process's last started
# id, then for own entries the previous process's last started id and solo id ('' if
# none). Returns the next start id ('0-0' at the end), then id, fields, crashes per
# claimed entry; entries deleted from the stream are dropped by XCLAIM.
# A ledger key another application holds as another type is left alone and read as
# empty (`OWN_KEYS_LUA`): crash accounting is off for it (the worker logs it), the
# take-over itself goes on, so jobs still run and no read loop crashes on it.
TAKE = (
    OWN_KEYS_LUA
    + """
local stream, group, me, token = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local started_ok, solo_ok = ours(KEYS[2], 'hash'), ours(KEYS[3], 'hash')
local crashes_ok = ours(KEYS[4], 'hash')
local own, count = ARGV[4] == '', tonumber(ARGV[6])
local rows
if own then
  rows = redis.call('XPENDING', stream, group, ARGV[5], '+', count, me)
else
  rows = redis.call('XPENDING', stream, group, 'IDLE', ARGV[4], ARGV[5], '+', count)
end
if #rows == 0 then return {'0-0'} end
local function id_of(text)
  if not text then return nil end
  return string.match(text, '^(%S+)')
end
local function le(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams < bms or (ams == bms and aseq <= bseq)
end
local records = {}
local function record(owner)
  if records[owner] then return records[owner] end
  local r = {}
  if owner ~= me then
    if started_ok then r.mark = id_of(redis.call('HGET', KEYS[2], owner)) end
    if solo_ok then r.solo = id_of(redis.call('HGET', KEYS[3], owner)) end
  elseif own then
    r.mark, r.solo = id_of(ARGV[8]), id_of(ARGV[9])
  end
  records[owner] = r
  return r
end
local ids = {}
for i, row in ipairs(rows) do
  local id, r = row[1], record(row[2])
  ids[i] = id
  local blamed = r.solo == id
  if not blamed and r.mark then
    blamed = crashes_ok and redis.call('HEXISTS', KEYS[4], id) == 0 and le(id, r.mark)
  end
  if blamed and crashes_ok then redis.call('HINCRBY', KEYS[4], id, 1) end
end
local min_idle = own and 0 or ARGV[4]
local claimed = redis.call('XCLAIM', stream, group, me, min_idle, unpack(ids))
local out = {#rows == count and ('(' .. ids[#ids]) or '0-0'}
local before = id_of(ARGV[7])
local mark = before
for _, entry in ipairs(claimed) do
  local id = entry[1]
  local crashes = crashes_ok and tonumber(redis.call('HGET', KEYS[4], id) or '0') or 0
  if crashes == 0 and (mark == nil or not le(id, mark)) then mark = id end
  out[#out + 1], out[#out + 2], out[#out + 3] = id, entry[2], crashes
end
if started_ok and mark ~= before then redis.call('HSET', KEYS[2], me, mark .. ' ' .. token) end
return out
"""
)

# KEYS: started, solo. ARGV: consumer, token. The records a previous process of this
# consumer left (it died), removed and returned; nothing if they are this process's own.
SNAPSHOT = (
    OWN_KEYS_LUA
    + """
local out = {}
for i, key in ipairs(KEYS) do
  local v = ours(key, 'hash') and redis.call('HGET', key, ARGV[1])
  if v and string.sub(v, -#ARGV[2]) ~= ARGV[2] then
    redis.call('HDEL', key, ARGV[1])
    out[i] = v
  else
    out[i] = ''
  end
end
return out
"""
)

# KEYS: started, solo. ARGV: consumer, token. A graceful stop: this process's records go,
# so what it leaves pending is taken over without blame.
FORGET = (
    OWN_KEYS_LUA
    + """
for _, key in ipairs(KEYS) do
  local v = ours(key, 'hash') and redis.call('HGET', key, ARGV[1])
  if v and string.sub(v, -#ARGV[2]) == ARGV[2] then redis.call('HDEL', key, ARGV[1]) end
end
return 0
"""
)

# KEYS: stream, crashes. ARGV: group. Drops the counts of entries no longer pending
# (acknowledged or dead-lettered); the hash holds only entries that crashed a worker.
PRUNE = (
    OWN_KEYS_LUA
    + """
local removed = 0
if not ours(KEYS[2], 'hash') then return 0 end
for _, id in ipairs(redis.call('HKEYS', KEYS[2])) do
  if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) == 0 then
    redis.call('HDEL', KEYS[2], id)
    removed = removed + 1
  end
end
return removed
"""
)


@dataclass(slots=True)
class Previous:
    """What the consumer's previous process recorded: its last start and its solo entry."""

    mark: str
    solo: str


class CrashLedger:
    """One worker process's side of crash accounting (see the module docstring)."""

    def __init__(self, redis: AsyncRedis, keys: QueueKeys, consumer: str) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.token = uuid4().hex[:16]
        """Tells this process's records from those of an earlier one with the same name."""
        self.mark = ""
        """The last entry id this process recorded as started ("" before the first)."""
        self._previous: Previous | None = None
        self._snapshot_taken = False
        self._take = redis.register_script(TAKE)
        self._snapshot = redis.register_script(SNAPSHOT)
        self._forget = redis.register_script(FORGET)
        self._prune = redis.register_script(PRUNE)

    def start_command(self, last_id: str) -> tuple[str, str, str, str]:
        """The ``HSET`` recording that every entry of a read up to ``last_id`` starts."""
        self.mark = last_id
        return ("HSET", self.keys.started, self.consumer, f"{last_id} {self.token}")

    async def take_own(self, start: str, count: int) -> tuple[str, list[Taken]]:
        """Claim up to ``count`` of this consumer's pending entries from ``start``
        (``-`` first), blaming those a previous process of it died running."""
        if not self._snapshot_taken:
            await self._say_if_foreign()
            keys = [self.keys.started, self.keys.solo]
            mark, solo = await self._snapshot(keys=keys, args=[self.consumer, self.token])
            self._previous = Previous(mark, solo) if mark or solo else None
            self._snapshot_taken = True
        previous = self._previous or Previous("", "")
        cursor, taken = await self._call("", start, count, previous)
        if previous.solo and any(entry_id == previous.solo.split()[0] for entry_id, *_ in taken):
            previous.solo = ""  # blamed once; a repeated drain must not blame it again
        return cursor, taken

    def drained(self) -> None:
        """This consumer's own entries were all taken: the previous process is settled."""
        self._previous = None

    async def take_idle(self, min_idle_ms: int, start: str, count: int) -> tuple[str, list[Taken]]:
        """Claim up to ``count`` entries idle for ``min_idle_ms`` (their workers died),
        blaming those their dead workers had started."""
        return await self._call(str(min_idle_ms), start, count, Previous("", ""))

    async def _call(
        self, min_idle: str, start: str, count: int, previous: Previous
    ) -> tuple[str, list[Taken]]:
        keys = [self.keys.stream, self.keys.started, self.keys.solo, self.keys.crashes]
        count = min(count, TAKE_LIMIT)
        args: list[str | int] = [self.keys.group, self.consumer, self.token, min_idle, start]
        args += (count, self.mark, previous.mark, previous.solo)
        reply: list[Any] = await self._take(keys=keys, args=args)
        taken: list[Taken] = []
        for n in range(1, len(reply), 3):
            entry_id, flat, crashes = reply[n], reply[n + 1] or [], int(reply[n + 2])
            pairs = iter(flat)
            taken.append((entry_id, dict(zip(pairs, pairs)), crashes))  # noqa: B905
            if not crashes and _after(entry_id, self.mark):
                self.mark = entry_id
        return str(reply[0]), taken

    async def _say_if_foreign(self) -> None:
        """Log, once per process, a ledger key another application holds as another type:
        the scripts leave it alone, and crash accounting is off for what it records."""
        keys = (self.keys.started, self.keys.solo, self.keys.crashes)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.type(key)
            kinds = await pipe.execute()
        foreign = [key for key, kind in zip(keys, kinds, strict=True) if kind not in FREE]
        if foreign:
            log.error(
                "crash accounting is off: %s held by another application as another type"
                " (jobs still run; a job that kills its worker is not counted)",
                ", ".join(foreign),
            )

    async def begin_solo(self, entry_id: str) -> None:
        """Record that ``entry_id`` now runs alone (before its handler starts)."""
        value = f"{entry_id} {self.token}"
        with _foreign_left_alone():
            await persist(
                lambda: self.redis.hset(self.keys.solo, self.consumer, value), "record solo run"
            )

    async def end_solo(self) -> None:
        """The entry running alone is over: a death now blames by the last start again."""
        with _foreign_left_alone():
            await persist(lambda: self.redis.hdel(self.keys.solo, self.consumer), "end solo run")

    async def forget(self) -> None:
        """A graceful stop: delete this process's records (nothing it leaves is blamed)."""
        keys = [self.keys.started, self.keys.solo]
        await self._forget(keys=keys, args=[self.consumer, self.token])

    async def prune(self) -> int:
        """Drop the counts of entries no longer pending; returns how many went."""
        keys = [self.keys.stream, self.keys.crashes]
        return int(await self._prune(keys=keys, args=[self.keys.group]))


FREE = ("none", "hash")
"""What a ledger key may be: absent, or a hash of ours."""


@contextlib.contextmanager
def _foreign_left_alone() -> Iterator[None]:
    """A write to a ledger key of another type is skipped (`_say_if_foreign` said so)."""
    try:
        yield
    except ResponseError as exc:
        if "WRONGTYPE" not in str(exc):
            raise


def _after(entry_id: str, mark: str) -> bool:
    """``entry_id`` comes after ``mark`` in the stream ("" comes before everything)."""
    if not mark:
        return True
    a_ms, _, a_seq = entry_id.partition("-")
    b_ms, _, b_seq = mark.partition("-")
    return (int(a_ms), int(a_seq or 0)) > (int(b_ms), int(b_seq or 0))
