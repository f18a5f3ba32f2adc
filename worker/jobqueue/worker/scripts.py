"""The Lua scripts that make each outcome one atomic step with its acknowledgement.

Every script acts only if its ``XACK`` removed the entry from the pending list, so a
script repeated after a lost reply, or run late by a worker whose entry was reclaimed
and finished elsewhere, changes nothing. Every key a script touches comes in ``KEYS``
(status records included), all in the queue's slot (`jobqueue.core.keys`), and every
script starts with ``#!lua`` so that a Redis in cluster mode enforces it.
"""

from __future__ import annotations

from jobqueue.core.scripts import OWN_KEYS_LUA
from jobqueue.core.waiting import ANNOUNCE_LUA

# Batches travel as one JSON array argument: packing one argument per job costs the
# client far more than cjson.decode costs the server.

# The status writes of the success path, one call per flush: ``running`` for newly read
# jobs, ack + ``succeeded`` for finished ones, and both at once for jobs that started and
# finished since the last flush (the usual case for short jobs).
# KEYS: stream, queued, waiting, settled, the status record of every job the flush names,
# then the success-record hashes (``done``) the flush writes to.
# ARGV: group, ttl_s, now_iso,
# JSON [key, attempt, entry_id, type, enqueued_at, job_id, ...] to mark running (attempts
#   as text; ``key`` is the index of the job's status record in KEYS),
# JSON [entry_id, key, job_id, ...] to acknowledge as succeeded,
# JSON [entry_id, key, done, job_id, success, ...] to acknowledge as succeeded jobs never
#   marked running: ``done`` is the success-record hash (one of KEYS) to add the job to,
#   or '' for an id without one or with a result (its own record is written), and
#   ``success`` the job's value there, JSON text built by the worker (see below);
# then, with lanes or when some handler returned a value: the acknowledgements by stream,
# JSON [[stream (index in KEYS), [entry_id of the second list...], [of the third...]], ...]
# with lanes ('' without: every id is of KEYS[1], the queue's stream);
# then, only when some handler returned a value, JSON [key, field, ...] and one value per
# pair (``result`` JSON text or ``result_error``), written with that job's success.
# Every job named leaves ``queued``. A success in a ``done`` hash is one field, value
# ``[finished_at, attempts, entry_id, type, enqueued_at]``, with no key, HSET or EXPIRE of
# its own (the hash's TTL is refreshed once per flush): Redis's cost per short job is
# what this saves (bench/README.md). The worker builds that value, not the script:
# cjson.encode of it cost Redis ~0.8 us a job more than decoding it as text. A record
# that already shows an outcome is never set back to running. Each list is acknowledged
# with one multi-id XACK. When it acknowledges every entry (the normal case) every job's
# record is written; when it acknowledges fewer, some entries were no longer pending (a
# repeated flush whose first reply was lost, or an entry reclaimed and finished
# elsewhere) and only jobs that show no outcome yet are written, which leaves both of
# those cases as they were.
FLUSH = (
    "#!lua"
    + ANNOUNCE_LUA
    + """
local ttl, now = ARGV[2], ARGV[3]
local settled = {succeeded = true, dead = true, cancelled = true, retrying = true}
-- A key holding another type (not ours) is left alone: failing the whole flush on it
-- would hold every acknowledgement of the batch back, forever.
local function foreign(reply)
  if type(reply) == 'table' and reply.err then
    if string.sub(reply.err, 1, 9) == 'WRONGTYPE' then return true end
    error(reply)  -- anything else (OOM, ...) fails the script as redis.call would
  end
  return false
end
local function unsettled(key)
  local state = redis.pcall('HGET', key, 'state')
  if foreign(state) then return false end
  return not (state and settled[state])
end
local function record(key, ...)
  if not foreign(redis.pcall('HSET', key, ...)) then redis.call('EXPIRE', key, ttl) end
end
local function mark_running(key, attempt, entry_id, job_type, enqueued_at)
  record(key, 'state', 'running', 'started_at', now, 'updated_at', now,
    'attempts', attempt, 'entry_id', entry_id, 'type', job_type, 'enqueued_at', enqueued_at)
end
-- With lanes: the acknowledgements by stream (the lists' entry ids are of several).
local lanes = nil
if ARGV[7] and ARGV[7] ~= '' then lanes = cjson.decode(ARGV[7]) end
-- Acknowledges the entry ids at list[1], list[1 + step], ...; true if all were pending.
local function ack_all(list, step, which)
  if lanes then
    local want, acked = 0, 0
    for _, lane in ipairs(lanes) do
      local ids = lane[which]
      if #ids > 0 then
        acked = acked + redis.call('XACK', KEYS[lane[1]], ARGV[1], unpack(ids))
        want = want + #ids
      end
    end
    return acked == want, acked
  end
  local ids = {}
  for i = 1, #list, step do ids[#ids + 1] = list[i] end
  if #ids == 0 then return true, 0 end
  local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
  return acked == #ids, acked
end
-- Results: KEYS index -> {field, value}; absent (no work) when every handler returned None.
local results = {}
if ARGV[8] then
  local stored = cjson.decode(ARGV[8])
  for i = 1, #stored, 2 do results[stored[i]] = {stored[i + 1], ARGV[8 + (i + 1) / 2]} end
end
-- Whether anyone waits for a job (`jobqueue.core.waiting`): asked once per flush, and
-- only by a flush with a success in it.
local waited = nil
local function announced(key)
  if waited == nil then waited = anyone_waits(KEYS[3]) end
  if waited then announce(KEYS[3], KEYS[4], key, 'succeeded') end
end
local function succeeded(index, ...)
  local r = results[index]
  if r then record(KEYS[index], 'state', 'succeeded', r[1], r[2], ...)
  else record(KEYS[index], 'state', 'succeeded', ...) end
  announced(KEYS[index])
end
local left = {}  -- job ids that leave `queued`
local running = cjson.decode(ARGV[4])
for i = 1, #running, 6 do
  local key = KEYS[running[i]]
  left[#left + 1] = running[i + 5]
  if unsettled(key) then
    mark_running(key, running[i + 1], running[i + 2], running[i + 3], running[i + 4])
  end
end
local done = cjson.decode(ARGV[5])
local all_pending, acked = ack_all(done, 3, 2)
for i = 1, #done, 3 do
  local key = KEYS[done[i + 1]]
  left[#left + 1] = done[i + 2]
  if all_pending or unsettled(key) then
    succeeded(done[i + 1], 'finished_at', now, 'updated_at', now)
  end
end
local both = cjson.decode(ARGV[6])
local both_pending, both_acked = ack_all(both, 5, 3)
local into, owners = {}, {}  -- done hash -> {job id, success, ...}, {status key, ...}
local function new_success(key, hash, id)
  if not unsettled(key) then return false end
  return hash == '' or redis.pcall('HEXISTS', hash, id) == 0
end
for i = 1, #both, 5 do
  local key, hash, id = KEYS[both[i + 1]], both[i + 2], both[i + 3]
  left[#left + 1] = id
  if both_pending or new_success(key, hash, id) then
    if hash == '' then
      local success = cjson.decode(both[i + 4])
      succeeded(both[i + 1], 'started_at', now, 'finished_at', now,
        'updated_at', now, 'attempts', success[2], 'entry_id', both[i], 'type', success[4],
        'enqueued_at', success[5])
    else
      local fields = into[hash]
      if not fields then
        fields = {}
        into[hash] = fields
        owners[hash] = {}
      end
      owners[hash][#owners[hash] + 1] = key
      announced(key)
      fields[#fields + 1] = id
      fields[#fields + 1] = both[i + 4]
    end
  end
end
for hash, fields in pairs(into) do
  if not foreign(redis.pcall('HSET', hash, unpack(fields))) then
    redis.call('EXPIRE', hash, ttl)
  else  -- not a hash of ours: each job gets its own record instead
    for _, key in ipairs(owners[hash]) do
      record(key, 'state', 'succeeded', 'started_at', now, 'finished_at', now, 'updated_at', now)
    end
  end
end
if #left > 0 then foreign(redis.pcall('HDEL', KEYS[2], unpack(left))) end
return acked + both_acked
"""
)

# KEYS: stream, delayed, delayed_jobs, status, queued.
# ARGV: group, entry_id, job_id, fields_json, due_ms, now_iso, run_at_iso, error, attempts, ttl,
# type, enqueued_at.
# Every outcome script checks the types of the keys it writes before its first write
# (`OWN_KEYS_LUA`): it either completes or changes nothing.
ACK_RETRY = (
    OWN_KEYS_LUA
    + """
require_ours(KEYS[2], 'zset')
require_ours(KEYS[3], 'hash')
local record = ours(KEYS[4], 'hash')
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ours(KEYS[5], 'hash') then redis.call('HDEL', KEYS[5], ARGV[3]) end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
if record then
  redis.call('HSET', KEYS[4], 'state', 'retrying', 'last_error', ARGV[8], 'run_at', ARGV[7],
    'attempts', ARGV[9], 'updated_at', ARGV[6], 'type', ARGV[11], 'enqueued_at', ARGV[12])
  redis.call('EXPIRE', KEYS[4], ARGV[10])
end
return 1
"""
)

# KEYS: stream, dead stream, status, queued, waiting, settled. ARGV: group, entry_id, error,
# now_iso, ttl, attempts, type, enqueued_at (as the entry had them, '' when it had none),
# job_id, then the dead-letter entry's fields as name, value pairs.
ACK_DEAD = (
    OWN_KEYS_LUA
    + ANNOUNCE_LUA
    + """
require_ours(KEYS[2], 'stream')
local record = ours(KEYS[3], 'hash')
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ours(KEYS[4], 'hash') then redis.call('HDEL', KEYS[4], ARGV[9]) end
local dead_id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 10))
if record then
  redis.call('HSET', KEYS[3], 'state', 'dead', 'last_error', ARGV[3], 'finished_at', ARGV[4],
    'updated_at', ARGV[4], 'attempts', ARGV[6], 'type', ARGV[7], 'enqueued_at', ARGV[8],
    'dead_entry_id', dead_id)
  redis.call('EXPIRE', KEYS[3], ARGV[5])
  announce(KEYS[5], KEYS[6], KEYS[3], 'dead')
end
return 1
"""
)

# KEYS: stream, status, waiting, settled. ARGV: group, entry_id, now_iso, ttl.
ACK_CANCELLED = (
    OWN_KEYS_LUA
    + ANNOUNCE_LUA
    + """
local record = ours(KEYS[2], 'hash')
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if record then
  redis.call('HSET', KEYS[2], 'state', 'cancelled', 'finished_at', ARGV[3],
    'updated_at', ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  announce(KEYS[3], KEYS[4], KEYS[2], 'cancelled')
end
return 1
"""
)

# Putting throttled jobs back to wait (`jobqueue.worker.limiter`): ack + delayed set, the
# attempts kept (a limit is not a failure), the job out of ``queued`` as a retry leaves it.
# KEYS: stream, delayed, delayed_jobs, queued, then the status record of each job, then
# (lanes) the lane streams the jobs came from.
# ARGV: group, ttl, now_iso, JSON [[entry_id, job_id, fields_json, due_ms, run_at_iso,
# type, enqueued_at, attempts, stream], ...] in KEYS order; ``stream`` (the index in KEYS
# of the job's lane stream) only for a job of a lane stream that is not KEYS[1].
ACK_DEFER = (
    OWN_KEYS_LUA
    + """
require_ours(KEYS[2], 'zset')
require_ours(KEYS[3], 'hash')
local queued = ours(KEYS[4], 'hash')
local moved = 0
for i, job in ipairs(cjson.decode(ARGV[4])) do
  local key = KEYS[4 + i]
  if redis.call('XACK', KEYS[job[9] or 1], ARGV[1], job[1]) == 1 then
    if queued then redis.call('HDEL', KEYS[4], job[2]) end
    redis.call('ZADD', KEYS[2], job[4], job[2])
    redis.call('HSET', KEYS[3], job[2], job[3])
    if ours(key, 'hash') then
      redis.call('HSET', key, 'state', 'delayed', 'run_at', job[5], 'updated_at', ARGV[3],
        'type', job[6], 'enqueued_at', job[7], 'attempts', job[8])
      redis.call('EXPIRE', key, ARGV[2])
    end
    moved = moved + 1
  end
end
return moved
"""
)
