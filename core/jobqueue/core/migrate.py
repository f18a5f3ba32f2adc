"""Moving a queue's data from the key names before 0.2 to the hash-tagged ones.

Before 0.2 a queue's derived keys had no hash tag (``jobs:work:delayed``,
``jobs:work:job:<id>``, ...) and dead letters of every queue defaulted to one shared
``jobs:dead``. `migrate_keys` (``jobqueue migrate-keys``) moves what a single Redis
holds under the old names to `jobqueue.core.keys.QueueKeys`: the stream keeps its name,
so producers and consumer groups are untouched.

Every move is one atomic step per key or entry, so the command may run while the new
version's workers run, may be interrupted, and may run again (it then moves what is
left, e.g. what old workers still wrote during a rolling upgrade): nothing is lost or
duplicated. Where a new key already exists it wins (it is the newer write). Dead letters
keep their entry ids when the new stream has none newer (the usual case); otherwise
they get new ids. The old layout never ran on Redis Cluster, so these scripts touch keys
of two slots, which only a single Redis allows.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from jobqueue.core.keys import LEGACY_DEAD_STREAM, QueueKeys

BATCH = 500
"""Members, keys or entries moved per script call or round trip."""

# KEYS: old zset, old hash, new zset, new hash. ARGV: limit. Moves up to ``limit`` delayed
# jobs (score and JSON fields) unless the new set has the id already; returns how many
# ids it took off the old set.
_MOVE_DELAYED = """
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
for i = 1, #ids, 2 do
  local id, due = ids[i], ids[i + 1]
  local fields = redis.call('HGET', KEYS[2], id)
  if fields and not redis.call('ZSCORE', KEYS[3], id) then
    redis.call('ZADD', KEYS[3], due, id)
    redis.call('HSET', KEYS[4], id, fields)
  end
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
return #ids / 2
"""

# KEYS: old key, new key. Renames (keeping the TTL) unless the new key exists, which wins.
_MOVE_KEY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
"""

# KEYS: old dead stream, new dead stream. ARGV: source stream, start id (exclusive), limit.
# Moves the old stream's entries whose source_stream is ours; returns {moved, last id seen}.
_MOVE_DEAD = """
local rows = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+', 'COUNT', ARGV[3])
local moved, last = 0, ''
for _, row in ipairs(rows) do
  local id, fields = row[1], row[2]
  last = id
  local source = nil
  for i = 1, #fields, 2 do
    if fields[i] == 'source_stream' then source = fields[i + 1] end
  end
  if source == ARGV[1] then
    -- Its own id when the new stream has none newer, else a new one.
    local kept = redis.pcall('XADD', KEYS[2], id, unpack(fields))
    if type(kept) == 'table' and kept.err then
      redis.call('XADD', KEYS[2], '*', unpack(fields))
    end
    redis.call('XDEL', KEYS[1], id)
    moved = moved + 1
  end
end
return {moved, last}
"""


@dataclass(frozen=True, slots=True)
class Migrated:
    """What one `migrate_keys` run moved."""

    delayed_jobs: int = 0
    status_records: int = 0
    idempotency_keys: int = 0
    dead_letters: int = 0


async def migrate_keys(
    redis: Redis, keys: QueueKeys, *, legacy_dead: str = LEGACY_DEAD_STREAM
) -> Migrated:
    """Move the queue's data from its pre-0.2 key names to ``keys`` (one Redis only).

    ``legacy_dead``: the dead-letter stream the old version wrote (its default,
    ``jobs:dead``, shared by every queue: only entries whose ``source_stream`` is this
    queue's stream move). Nothing moves there when it is ``keys.dead`` already.
    """
    old = keys.legacy
    delayed_keys = (old.delayed, old.delayed_jobs, keys.delayed, keys.delayed_jobs)
    delayed = 0
    while True:
        moved = int(await redis.eval(_MOVE_DELAYED, 4, *delayed_keys, BATCH))
        delayed += moved
        if moved < BATCH:
            break
    status = await _move_prefixed(redis, old.status_prefix, keys.status_prefix)
    idem = await _move_prefixed(redis, old.idempotency_prefix, keys.idempotency(""))
    dead = 0 if legacy_dead == keys.dead else await _move_dead(redis, keys, legacy_dead)
    return Migrated(delayed, status, idem, dead)


async def _move_prefixed(redis: Redis, old_prefix: str, new_prefix: str) -> int:
    moved = 0
    async for key in redis.scan_iter(match=_glob_escape(old_prefix) + "*", count=BATCH):
        new = new_prefix + key[len(old_prefix) :]
        moved += int(await redis.eval(_MOVE_KEY, 2, key, new))
    return moved


async def _move_dead(redis: Redis, keys: QueueKeys, legacy_dead: str) -> int:
    moved, after = 0, "0-0"
    while True:
        count, last = await redis.eval(
            _MOVE_DEAD, 2, legacy_dead, keys.dead, keys.stream, after, BATCH
        )
        moved += int(count)
        if not last:
            return moved
        after = last


def _glob_escape(text: str) -> str:
    # Stream names may hold glob characters; match them literally.
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
