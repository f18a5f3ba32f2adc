"""Trimming the stream safely (SPEC §3): only below what every group has finished.

For each consumer group the floor is its oldest pending entry when it has any, else its
last-delivered id; the stream is trimmed with ``XTRIM MINID`` below the lowest floor of
all groups. Entries not yet delivered to some group, or delivered and not yet
acknowledged, are never removed (an approximate ``MAXLEN`` could drop unread jobs under
backlog). The groups are read and the stream trimmed in one script, so no group can move
backwards in between.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import QueueKeys

# KEYS: stream. Returns how many entries were removed (0 when there is no group).
TRIM = """#!lua
local function older(a, b)
  local ams, aseq = string.match(a, '(%d+)-(%d+)')
  local bms, bseq = string.match(b, '(%d+)-(%d+)')
  if tonumber(ams) ~= tonumber(bms) then return tonumber(ams) < tonumber(bms) end
  return tonumber(aseq) < tonumber(bseq)
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local floor = nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  local candidate = info['last-delivered-id']
  if tonumber(info['pending']) > 0 then
    candidate = redis.call('XPENDING', KEYS[1], info['name'])[2]
  end
  if floor == nil or older(candidate, floor) then floor = candidate end
end
if floor == nil then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', floor)
"""


class Trimmer:
    """Removes stream entries every group is done with, in each of ``streams`` (the
    queue's lane streams; by default its one stream)."""

    def __init__(self, redis: AsyncRedis, keys: QueueKeys, streams: Sequence[str] = ()) -> None:
        self.keys = keys
        self.streams = list(streams) or [keys.stream]
        self._trim = redis.register_script(TRIM)

    async def trim(self) -> int:
        """Trim once; returns how many entries were removed."""
        removed = 0
        for stream in self.streams:
            removed += int(await self._trim(keys=[stream]))
        return removed
