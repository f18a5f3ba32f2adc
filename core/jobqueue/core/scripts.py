"""The Lua scripts of the client: enqueue, cancel and replay, each one atomic step.

Each script moves a job *and* writes its status record in the same call, so the record
never says something the streams do not (docs/internals.md). Every key a script
touches comes in ``KEYS``, all in the queue's slot (`jobqueue.core.keys`), and every
script starts with ``#!lua`` so that a Redis in cluster mode enforces it.

The argument layouts are documented above each script; `jobqueue.core.client` is the
only caller.
"""

from __future__ import annotations

from jobqueue.core.waiting import ANNOUNCE_LUA

# Prepended to the scripts that move a job and write its record (cancel, replay, the
# worker's outcomes and promotion). A key holding another type than ours (another
# application's key in a shared Redis) would make a write fail half-way, and Lua
# scripts are not rolled back: the writes before it would stay (an entry acknowledged,
# its retry or dead letter never written). So scripts check with ``ours`` before their
# first write: a foreign status record is left alone (the job still moves), a foreign
# queue key fails the script before it changes anything.
OWN_KEYS_LUA = """#!lua
local function ours(key, kind)
  local found = redis.call('TYPE', key)['ok']
  return found == 'none' or found == kind
end
local function require_ours(key, kind)
  if not ours(key, kind) then
    error({err = 'WRONGTYPE ' .. key .. ' holds another type than ' .. kind})
  end
end
"""

# KEYS: delayed (zset), delayed_jobs (hash), queued (hash), the S ready streams (the
#       queue's stream, or the stream of each priority lane), then, for each job the
#       script may look up or whose record it writes (with check, an idempotency key, or
#       delayed), its status record, its idempotency key when it has one, and its
#       success-record hash when its id has one (`QueueKeys.done`: 26 characters). A
#       fresh job that goes straight to its stream names no key of its own: Redis's cost
#       per job is what that saves (bench/README.md).
# ARGV: status_ttl_s, idempotency_ttl_s, now_iso, now_ms, not_after_ms ('0' = none),
#       check ('1': look whether each job exists already), S, then per ready stream what
#       follows the entry id in `queued` for a job in it ('' for the queue's stream, ' <lane
#       name>' for another lane's: `jobqueue.core.records`), then per job: job_id, meta,
#       n, then the n entry fields as plain arguments k1, v1, ..., (n = 2 x fields).
#       ``meta`` is the index (1..S) of its ready stream for a job with no idempotency
#       key and no delay; for any other a JSON array [idempotency_key ('' = none),
#       due_ms ('0' = now), run_at_iso, type, enqueued_at, stream, delayed_json (only
#       when delayed)]. Plain arguments go to XADD as they are: one JSON argument a job
#       cost Redis ~2.5 us a job more to decode and take apart, and the client packs the
#       arguments in C (`jobqueue.core.packing`; bench/enqueue_script_cost.py).
# A job whose idempotency key is known, or (with check) whose id is known anywhere a
# state lives (own record, `queued`, its success hash), is not enqueued again: the answer
# is that job, marked duplicate. So a call repeated after a lost reply (same ids, check
# set) writes nothing twice; a first call of ids the client just made skips the lookups.
# Past not_after_ms by Redis's clock the call writes nothing and answers every job
# 'expired': a caller that gave up at its deadline (and said "outcome unknown") is not
# contradicted by a write landing later.
# Returns one string per job: its entry id when it was queued, 'd' when it was delayed,
# 'x' when the call expired, '=' and the first job's id for a duplicate (the caller
# reads that job's record): one reply element a job, not four.
# A queue key of another type (a foreign key) fails the call before its first write, as
# in the other scripts (`OWN_KEYS_LUA`): a batch is all or nothing.
ENQUEUE = (
    OWN_KEYS_LUA
    + """
local delayed, delayed_jobs, queued = KEYS[1], KEYS[2], KEYS[3]
local status_ttl, idem_ttl, now, now_ms = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local not_after, check, streams = tonumber(ARGV[5]), ARGV[6] == '1', tonumber(ARGV[7])
local first_job = 8 + streams
require_ours(delayed, 'zset')
require_ours(delayed_jobs, 'hash')
require_ours(queued, 'hash')
for s = 1, streams do require_ours(KEYS[3 + s], 'stream') end
local function known(status, done, id)
  return redis.call('EXISTS', status) == 1 or redis.call('HEXISTS', queued, id) == 1
    or (done ~= nil and redis.call('HEXISTS', done, id) == 1)
end
local call, decode = redis.call, cjson.decode
local out = {}
if not_after > 0 then
  local time = call('TIME')
  if tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) > not_after then
    local i = first_job
    while i <= #ARGV do
      out[#out + 1] = 'x'
      i = i + 3 + tonumber(ARGV[i + 2])
    end
    return out
  end
end
local k = 4 + streams
local i, last = first_job, #ARGV
while i <= last do
  local id, meta, first_field = ARGV[i], ARGV[i + 1], i + 3
  local last_field = i + 2 + tonumber(ARGV[i + 2])
  i = last_field + 1
  local idem, due_ms, lane = '', '0', nil
  local run_at, job_type, enqueued_at, delayed_json
  if string.byte(meta, 1) == 91 then  -- '[': an idempotency key or a delay
    local m = decode(meta)
    idem, due_ms, run_at, job_type, enqueued_at, lane = m[1], m[2], m[3], m[4], m[5], m[6]
    delayed_json = m[7]
  else
    lane = tonumber(meta)
  end
  local status, idem_key, done = nil, nil, nil
  if check or idem ~= '' or due_ms ~= '0' then  -- the job's keys come (see KEYS)
    status = KEYS[k]
    k = k + 1
    if idem ~= '' then
      idem_key = KEYS[k]
      k = k + 1
    end
    if #id == 26 then
      done = KEYS[k]
      k = k + 1
    end
  end
  local existing = idem_key and call('GET', idem_key)
  if not existing and check and known(status, done, id) then
    existing = id
  end
  if existing then
    out[#out + 1] = '=' .. existing
  else
    if idem_key then
      call('SET', idem_key, id, 'EX', idem_ttl)
    end
    if due_ms ~= '0' then
      call('ZADD', delayed, due_ms, id)
      call('HSET', delayed_jobs, id, delayed_json)
      call('HSET', status, 'state', 'delayed', 'type', job_type, 'enqueued_at', enqueued_at,
        'attempts', '0', 'run_at', run_at, 'updated_at', now)
      -- The record outlives the wait, or a long delay would leave a job without one.
      call('EXPIRE', status,
        tonumber(status_ttl) + math.ceil((tonumber(due_ms) - now_ms) / 1000))
      out[#out + 1] = 'd'
    else
      -- A queued job has no record of its own, only its entry id in `queued`: the
      -- rest is in the entry (the client derives `queued` from it). The worker removes
      -- it when the job starts (docs/internals.md, status records).
      local entry_id = call('XADD', KEYS[3 + lane], '*', unpack(ARGV, first_field, last_field))
      local suffix = ARGV[7 + lane]
      -- No concatenation for the queue's own stream: a new string per job costs.
      call('HSET', queued, id, suffix == '' and entry_id or entry_id .. suffix)
      out[#out + 1] = entry_id
    end
  end
end
return out
"""
)

# KEYS: delayed (zset), delayed_jobs (hash), status record, queued (hash), waiting,
# settled (`jobqueue.core.waiting`), the S ready streams (the queue's stream first, then
# the other lanes' streams), and the job's success-record hash when its id has one
# (`QueueKeys.done`).
# ARGV: job_id, group, now_iso, status_ttl_s, S, then the lane name of each ready stream
# ('' for the queue's stream).
# A job waiting in a lane stream is found by the lane name beside its entry id (`queued`
# or the record's ``lane``); a record with an entry id and no lane (a running job's, as
# the worker writes it) is looked for pending in every stream, since entry ids are only
# unique within one stream, but an entry is deleted only from the stream it is known
# to be in.
# Returns {answer, state}: answer is cancelled | cancel_requested | not_cancellable |
# not_found; state is the job's state after the call ('' when unknown).
CANCEL = (
    OWN_KEYS_LUA
    + ANNOUNCE_LUA
    + """
local delayed, delayed_jobs, status, queued = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local waiting, settled = KEYS[5], KEYS[6]
local id, group, now, ttl, streams = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local done = KEYS[7 + streams]
require_ours(delayed, 'zset')
require_ours(delayed_jobs, 'hash')
for i = 1, streams do require_ours(KEYS[6 + i], 'stream') end
require_ours(queued, 'hash')
if done and ours(done, 'hash') and redis.call('HEXISTS', done, id) == 1 then
  return {'not_cancellable', 'succeeded'}
end
if not ours(status, 'hash') then
  return {'not_found', ''}  -- not a record of ours: nothing to go by
end
local function mark_cancelled()
  redis.call('HSET', status, 'state', 'cancelled', 'finished_at', now, 'updated_at', now)
  redis.call('HDEL', status, 'run_at')
  redis.call('EXPIRE', status, ttl)
  announce(waiting, settled, status, 'cancelled')
  return {'cancelled', 'cancelled'}
end
local function stream_of(lane)  -- the ready stream of a lane name, nil when not ours
  for i = 1, streams do
    if ARGV[5 + i] == (lane or '') then return KEYS[6 + i] end
  end
  return nil
end
if redis.call('ZREM', delayed, id) == 1 then
  redis.call('HDEL', delayed_jobs, id)
  return mark_cancelled()
end
local state, entry_id, lane = unpack(redis.call('HMGET', status, 'state', 'entry_id', 'lane'))
local anywhere = not lane  -- a record without its lane: the entry may be in any stream
if not state then
  local ref = redis.call('HGET', queued, id)  -- a queued job's only trace (ENQUEUE)
  if not ref then return {'not_found', ''} end
  entry_id, lane = string.match(ref, '^(%S+) ?(.*)$')
  state, anywhere = 'queued', false
end
if state == 'succeeded' or state == 'dead' or state == 'cancelled' then
  return {'not_cancellable', state}
end
if entry_id then
  local stream = stream_of(lane)
  for i = 1, streams do
    local candidate = KEYS[6 + i]
    if candidate == stream or anywhere then
      local pending = redis.pcall('XPENDING', candidate, group, entry_id, entry_id, 1)
      if type(pending) == 'table' and not pending.err and #pending > 0 then
        redis.call('HSET', status, 'cancel_requested', '1', 'updated_at', now)
        redis.call('EXPIRE', status, ttl)
        return {'cancel_requested', state}
      end
    end
  end
  if not stream then return {'not_cancellable', state} end  -- a lane no longer declared
  local rows = redis.call('XRANGE', stream, entry_id, entry_id)
  if redis.call('XDEL', stream, entry_id) == 1 then
    redis.call('HDEL', queued, id)
    local fields = rows[1] and rows[1][2] or {}
    for i = 1, #fields, 2 do  -- the record keeps what only the entry held
      local name = fields[i]
      if name == 'type' or name == 'enqueued_at' or name == 'attempts' then
        redis.call('HSETNX', status, name, fields[i + 1])
      end
    end
    return mark_cancelled()
  end
end
return {'not_cancellable', state}
"""
)

# KEYS: dead stream, the ready stream it goes back to (its lane's), status record of the
# replayed job
# ARGV: dead_entry_id, now_iso, status_ttl_s, type, enqueued_at, lane ('' for the queue's
# stream, else the lane name the record keeps), k1, v1, ... (stream fields)
# Returns the new stream entry id, or false when the dead letter is gone (already
# replayed or deleted): XDEL succeeding first is what makes two replays enqueue once.
REPLAY = (
    OWN_KEYS_LUA
    + """
require_ours(KEYS[1], 'stream')
require_ours(KEYS[2], 'stream')
local record = ours(KEYS[3], 'hash')
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  return false
end
local entry_id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 7))
if record then
  redis.call('HSET', KEYS[3], 'state', 'queued', 'entry_id', entry_id, 'attempts', '0',
    'type', ARGV[4], 'updated_at', ARGV[2])
  redis.call('HSETNX', KEYS[3], 'enqueued_at', ARGV[5])
  redis.call('HDEL', KEYS[3], 'finished_at', 'cancel_requested', 'run_at', 'dead_entry_id',
    'lane')
  if ARGV[6] ~= '' then redis.call('HSET', KEYS[3], 'lane', ARGV[6]) end
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
return entry_id
"""
)
