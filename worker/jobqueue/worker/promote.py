"""Moving due delayed jobs and retries back to the stream (docs/internals.md).

One script call moves a bounded batch atomically: each due id is removed from the
sorted set and the hash, added to the stream and its status set to ``queued``, all in
one step, so two workers racing never promote a job twice and a crash in between never
loses one. A hash value that is not a JSON object cannot be turned back into a job; it
goes to the dead-letter stream with the raw text instead of blocking the set.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.scripts import OWN_KEYS_LUA
from jobqueue.core.wire import utc_now_iso

PROMOTE_BATCH = 500

# KEYS: delayed, delayed_jobs, stream, dead. ARGV: now_ms, limit, status prefix, ttl, now_iso.
PROMOTE = (
    OWN_KEYS_LUA
    + """
require_ours(KEYS[1], 'zset')
require_ours(KEYS[2], 'hash')
require_ours(KEYS[3], 'stream')
require_ours(KEYS[4], 'stream')
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do
  local text = redis.call('HGET', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  if text then
    local ok, fields = pcall(cjson.decode, text)
    if ok and type(fields) == 'table' then
      local flat = {}
      for name, value in pairs(fields) do
        flat[#flat + 1] = name
        flat[#flat + 1] = tostring(value)
      end
      local entry = redis.call('XADD', KEYS[3], '*', unpack(flat))
      local key = ARGV[3] .. id
      if ours(key, 'hash') then  -- a foreign key in its place is left alone
        redis.call('HSET', key, 'state', 'queued', 'entry_id', entry, 'updated_at', ARGV[5])
        redis.call('EXPIRE', key, ARGV[4])
      end
    else
      redis.call('XADD', KEYS[4], '*', 'original_id', id, 'source_stream', KEYS[3],
        'payload', text, 'failed_at', ARGV[5], 'reason', 'malformed: delayed job is not JSON')
    end
  end
end
return #ids
"""
)


class Promoter:
    """Moves due entries of ``{stream}:delayed`` back to the stream."""

    def __init__(self, redis: AsyncRedis, keys: QueueKeys, status_ttl_s: int) -> None:
        self.keys = keys
        self.ttl_s = status_ttl_s
        self._promote = redis.register_script(PROMOTE)

    async def promote_due(self, now_ms: int | None = None) -> int:
        """Move every job due by ``now_ms`` (epoch ms, default now); returns how many."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        keys = [self.keys.delayed, self.keys.delayed_jobs, self.keys.stream, self.keys.dead]
        total = 0
        while True:
            args: list[str | int] = [
                now,
                PROMOTE_BATCH,
                self.keys.status_prefix,
                self.ttl_s,
                utc_now_iso(),
            ]
            moved = int(await self._promote(keys=keys, args=args))
            total += moved
            if moved < PROMOTE_BATCH:
                return total
