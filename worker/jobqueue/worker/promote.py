"""Moving due delayed jobs and retries back to the stream (docs/internals.md): with
priority lanes, to the lane stream of each job's ``priority`` (one script call per batch
still, every lane stream in its KEYS), so a retry returns to the lane it came from.

The due ids are read first (``ZRANGEBYSCORE``), then one script call moves that bounded
batch atomically, with each job's status record among its ``KEYS`` (Redis Cluster needs
every key named up front): each id still due is removed from the sorted set and the
hash, added to the stream and its status set to ``queued``, all in one step, so two
workers racing never promote a job twice (the second finds the id gone and skips it) and
a crash in between never loses one. A hash value that is not a JSON object with fields
cannot be turned back into a job; it goes to the dead-letter stream with the raw text
and a reason instead of blocking the set (or, before, being dropped: ``{}`` made the
XADD fail after its ids had left the set).
"""

from __future__ import annotations

import logging
import time
from typing import cast

import orjson
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import NO_LANES, Lanes
from jobqueue.core.logs import job_fields
from jobqueue.core.scripts import OWN_KEYS_LUA
from jobqueue.core.wire import utc_now_iso

log = logging.getLogger("jobqueue.worker")
PROMOTE_BATCH = 500

# KEYS: delayed, delayed_jobs, stream, dead, then the status record of each id, then (with
# lanes) the lane streams.
# ARGV: now_ms, ttl, now_iso, the lanes as JSON [[low, high, stream index in KEYS], ...]
# ('' without lanes: every job goes to KEYS[3]), then the ids (in the order of their status
# records). A job goes to the lane holding its ``priority``; one without a valid priority
# to the queue's stream (the default lane), where the worker dead-letters it as malformed.
PROMOTE = (
    OWN_KEYS_LUA
    + """
require_ours(KEYS[1], 'zset')
require_ours(KEYS[2], 'hash')
require_ours(KEYS[3], 'stream')
require_ours(KEYS[4], 'stream')
local route = nil
if ARGV[4] ~= '' then
  route = cjson.decode(ARGV[4])
  for _, lane in ipairs(route) do require_ours(KEYS[lane[3]], 'stream') end
end
local function stream_for(fields)
  local priority = route and tonumber(fields['priority'])
  if priority then
    for _, lane in ipairs(route) do
      if priority >= lane[1] and priority <= lane[2] then return KEYS[lane[3]] end
    end
  end
  return KEYS[3]
end
local moved, dead = 0, {}
local function bury(id, text, reason)
  redis.call('XADD', KEYS[4], '*', 'original_id', id, 'source_stream', KEYS[3],
    'payload', text, 'failed_at', ARGV[3], 'reason', reason)
  dead[#dead + 1] = id
  dead[#dead + 1] = reason
end
for i = 5, #ARGV do
  local id, key = ARGV[i], KEYS[i]
  local due = redis.call('ZSCORE', KEYS[1], id)
  if due and tonumber(due) <= tonumber(ARGV[1]) then
    local text = redis.call('HGET', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    moved = moved + 1
    if text then
      local ok, fields = pcall(cjson.decode, text)
      if ok and type(fields) == 'table' then
        local flat = {}
        for name, value in pairs(fields) do
          flat[#flat + 1] = tostring(name)
          -- a nested value keeps its JSON text (a payload stored as an object runs);
          -- one cjson cannot write back (1e400 read as inf) as Lua prints it, for the
          -- worker to dead-letter: an error here, after the ZREM, would lose the job
          local text = nil
          if type(value) == 'table' then
            local written, encoded = pcall(cjson.encode, value)
            if written then text = encoded end
          end
          flat[#flat + 1] = text or tostring(value)
        end
        if #flat == 0 then
          -- XADD needs a field: this error after the ZREM above would lose the job
          bury(id, text, 'malformed: delayed job has no fields')
        else
          local entry = redis.call('XADD', stream_for(fields), '*', unpack(flat))
          if ours(key, 'hash') then  -- a foreign key in its place is left alone
            redis.call('HSET', key, 'state', 'queued', 'entry_id', entry, 'updated_at', ARGV[3])
            redis.call('EXPIRE', key, ARGV[2])
          end
        end
      else
        bury(id, text, 'malformed: delayed job is not JSON')
      end
    end
  end
end
return {moved, dead}
"""
)


class Promoter:
    """Moves due entries of ``{stream}:delayed`` back to the stream, or with ``lanes``
    to the lane stream of each job's priority."""

    def __init__(
        self, redis: AsyncRedis, keys: QueueKeys, status_ttl_s: int, lanes: Lanes = NO_LANES
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = status_ttl_s
        self._promote = redis.register_script(PROMOTE)
        self._lane_streams = [lanes.stream(keys, lane) for lane in lanes.lanes]
        self._route = [(lane.low, lane.high) for lane in lanes.lanes]

    async def promote_due(self, now_ms: int | None = None) -> int:
        """Move every job due by ``now_ms`` (epoch ms, default now); returns how many."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        queue = [self.keys.delayed, self.keys.delayed_jobs, self.keys.stream, self.keys.dead]
        total = 0
        while True:
            due = self.keys.delayed, "-inf", now
            ids = cast(list[str], await self.redis.zrangebyscore(*due, start=0, num=PROMOTE_BATCH))
            if not ids:
                return total
            keys = queue + [self.keys.status(job_id) for job_id in ids]
            route = ""
            if self._route:  # the lane streams follow the status records
                at = len(keys)
                keys += self._lane_streams
                route = orjson.dumps(
                    [[low, high, at + n + 1] for n, (low, high) in enumerate(self._route)]
                ).decode()
            args: list[str | int] = [now, self.ttl_s, utc_now_iso(), route, *ids]
            moved, dead = await self._promote(keys=keys, args=args)
            total += int(moved)
            for job_id, reason in zip(dead[::2], dead[1::2], strict=True):
                log.error(
                    "job %s dead-lettered: %s",
                    job_id,
                    reason,
                    extra=job_fields(job_id, "", self.keys.stream, reason="malformed"),
                )
            if len(ids) < PROMOTE_BATCH:
                return total
