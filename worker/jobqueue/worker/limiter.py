"""Per-type rate and concurrency limits, enforced across every worker of a queue.

One script call per read batch (`ADMIT`) asks for the permits of all its limited jobs
at once, by Redis's clock, so every worker process and pod shares one limiter:

- a rate limit is GCRA without burst: one start every ``period/N`` (`TypeLimit`). A job
  whose start falls within ``HOLD_S`` is granted with that start: the worker holds it
  (pending, in flight) and runs it then. A later start is *reserved* for the job (its
  id in ``limit_reserved``) and the job goes back to the delayed set, due ``HOLD_S``
  before its start, keeping its attempts; promoted and read again, it finds its
  reservation and starts on time. So rate-limited jobs start in the order they were
  first read, never earlier than the limit allows, and a reservation found late is
  given up for the next free start (never two starts at once);
- a concurrency limit is a semaphore of leases (`Delivery.key`, the entry id qualified by
  its lane when it comes from a lane stream, -> expiry in ``limit_leases``),
  taken with the permit, refreshed by the heartbeat and released when the handler ends;
  a dead worker's leases expire after ``limit_lease_ttl_s``. A job finding no free lease
  goes back to the delayed set for a short wait (``CONCURRENCY_WAIT_MS``, longer the
  further back it is) and is admitted again when it returns.

A throttled job is neither failed nor counted as an attempt. With no limits configured
the dispatcher has no limiter at all: nothing is asked of Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.limits import TypeLimit
from jobqueue.core.scripts import OWN_KEYS_LUA
from jobqueue.worker.inflight import Delivery
from jobqueue.worker.resilience import TRANSIENT_ERRORS, persist

log = logging.getLogger("jobqueue.worker")

HOLD_S = 1.0
"""Longest a granted job is held in the worker before its start, seconds; a job whose
start is further off waits in the delayed set and is promoted this long before it."""
CONCURRENCY_WAIT_MS = 250
"""Wait of a job that found no free lease, per ``limit`` jobs ahead of it, ms."""
CONCURRENCY_WAIT_CAP_MS = 5000
FOREIGN_WAIT_MS = 30_000
"""Wait of a job whose type's limiter keys another application holds (`ADMIT` code 3)."""
FORGET_MS = 3_600_000
"""A reservation this old (its job was cancelled or deleted while delayed) is dropped."""
WAIT_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)

# KEYS: per limited type of the batch: its rate key, reserved set and leases set.
# ARGV: JSON [[interval_ms (0 = no rate limit; fractional above 1000 starts a second),
#       concurrency (0 = none), lease_ttl_ms, hold_ms, [job_id, lease, ...]], ...] in the
#       order of the KEYS triples.
# Times are milliseconds with a fraction (Redis's clock to the microsecond), so a limit
# of more than 1000 starts a second spaces its starts as it says, not 1 ms apart.
# Returns Redis's now (us), then per job, in order: code, us. Code 0: granted, start in
# us; 1: over the rate limit, its reserved start is in us; 2: no free lease, wait us;
# 3: a key of its type's limiter is held by another application as another type (the
# limit cannot be kept: the job waits, wait us, and the worker says which key).
ADMIT = (
    OWN_KEYS_LUA
    + f"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local function us(ms) return math.floor(ms * 1000) end  -- replies are integers
local out = {{us(now)}}
local specs = cjson.decode(ARGV[1])
for n, s in ipairs(specs) do
  local rate_key, reserved_key, leases_key = KEYS[3 * n - 2], KEYS[3 * n - 1], KEYS[3 * n]
  local interval, limit, ttl, hold, jobs = s[1], s[2], s[3], s[4], s[5]
  local free, tat, behind = nil, nil, 0
  local foreign = not (ours(rate_key, 'string') and ours(reserved_key, 'zset')
    and ours(leases_key, 'zset'))
  if foreign then
    for i = 1, #jobs, 2 do
      out[#out + 1] = 3
      out[#out + 1] = us({FOREIGN_WAIT_MS})
    end
    jobs = {{}}
    interval, limit = 0, 0
  end
  if limit > 0 then
    redis.call('ZREMRANGEBYSCORE', leases_key, '-inf', now)
    free = limit - redis.call('ZCARD', leases_key)
  end
  if interval > 0 then
    tat = tonumber(redis.call('GET', rate_key) or '0')
    redis.call('ZREMRANGEBYSCORE', reserved_key, '-inf', now - {FORGET_MS})
  end
  for i = 1, #jobs, 2 do
    local job_id, lease = jobs[i], jobs[i + 1]
    if free and free <= 0 then
      local wait = {CONCURRENCY_WAIT_MS} * (1 + math.floor(behind / limit))
      behind = behind + 1
      out[#out + 1] = 2
      out[#out + 1] = us(math.min(wait, {CONCURRENCY_WAIT_CAP_MS}))
    else
      local start = now
      if tat then
        local reserved = redis.call('ZSCORE', reserved_key, job_id)
        if reserved then
          reserved = tonumber(reserved)
          redis.call('ZREM', reserved_key, job_id)
        end
        if reserved and reserved >= now then
          start = reserved
        else
          start = math.max(tat, now)
          tat = start + interval
        end
      end
      if start - now > hold then
        redis.call('ZADD', reserved_key, start, job_id)
        out[#out + 1] = 1
      else
        if free then
          redis.call('ZADD', leases_key, start + ttl, lease)
          free = free - 1
        end
        out[#out + 1] = 0
      end
      out[#out + 1] = us(start - now)
    end
  end
  if tat then
    redis.call('SET', rate_key, tat, 'PX', math.floor(math.max(tat - now, 0)) + 60000)
  end
end
return out
"""
)

GRANTED, OVER_RATE, NO_LEASE, FOREIGN_KEY = 0, 1, 2, 3
LIMIT_NAMES = {OVER_RATE: "rate", NO_LEASE: "concurrency", FOREIGN_KEY: "foreign_key"}


@dataclass(slots=True)
class Admission:
    """What the limiter said about one read batch."""

    granted: list[tuple[Delivery, float]]
    """Deliveries to run, each with its start (`time.time` seconds; 0.0: now, no rate
    limit)."""
    deferred: list[tuple[Delivery, float, str]]
    """Deliveries to put back in the delayed set: due in seconds from now (local
    clock), and the limit that held them (``rate`` or ``concurrency``)."""


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, tuple[Counter, Histogram]] = (
    weakref.WeakKeyDictionary()
)


def _limiter_metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    """The limiter's metric objects of ``registry``, made once: the engines of a
    partitioned worker share a registry, each with its partition's ``queue`` label."""
    found = _METRICS.get(registry)
    if found is None:
        throttled = Counter(
            "jobqueue_jobs_throttled_total",
            "Jobs put back to wait by a limit, by queue, type and limit (rate, concurrency).",
            ["queue", "type", "limit"],
            registry=registry,
        )
        wait = Histogram(
            "jobqueue_limiter_wait_seconds",
            "Wait the limiter imposed on a job at each admission, seconds.",
            ["queue", "type"],
            buckets=WAIT_BUCKETS_S,
            registry=registry,
        )
        found = _METRICS[registry] = (throttled, wait)
    return found


class Limiter:
    """The limits of one worker's queue, by job type."""

    def __init__(
        self,
        redis: AsyncRedis,
        keys: QueueKeys,
        limits: Iterable[TypeLimit],
        lease_ttl_s: float,
        registry: CollectorRegistry,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.limits = {x.type: x for x in limits}
        self.lease_ttl_ms = int(lease_ttl_s * 1000)
        self._admit = redis.register_script(ADMIT)
        self.held: dict[str, str] = {}
        """Leases this worker holds: lease (`Delivery.key`: the entry id, prefixed by its
        lane for a lane stream, as ids repeat across streams) -> its leases key."""
        queue = keys.stream
        self.throttled, self.wait = _limiter_metrics(registry)
        self._labels = {t: (queue, t) for t in self.limits}
        self._waits = {t: self.wait.labels(queue, t) for t in self.limits}
        self._to_release: dict[str, list[str]] = {}
        self._releasing: asyncio.Task[None] | None = None

    def limited(self, job_type: str) -> bool:
        return job_type in self.limits

    async def admit(self, deliveries: list[Delivery]) -> Admission:
        """Ask for the permits of ``deliveries`` (in read order) in one script call."""
        by_type: dict[str, list[Delivery]] = {}
        admission = Admission([], [])
        for d in deliveries:
            assert d.job is not None
            if d.job.type in self.limits:
                by_type.setdefault(d.job.type, []).append(d)
            else:
                admission.granted.append((d, 0.0))
        if not by_type:
            return admission
        keys: list[str] = []
        specs: list[list[object]] = []
        for job_type, group in by_type.items():
            limit = self.limits[job_type]
            keys += self._key_names(job_type)
            jobs: list[str] = []
            for d in group:
                assert d.job is not None
                jobs += (d.job.id, d.key)
            interval = limit.interval_ms
            specs.append([interval, limit.concurrency, self.lease_ttl_ms, HOLD_S * 1000, jobs])
        args = [orjson.dumps(specs)]
        reply = await persist(lambda: self._admit(keys=keys, args=args), "limit")
        self._read(cast(list[int], reply), by_type, admission)
        return admission

    def _read(
        self, reply: list[int], by_type: dict[str, list[Delivery]], admission: Admission
    ) -> None:
        at, now_s = 1, int(reply[0]) / 1e6
        for job_type, group in by_type.items():
            limit = self.limits[job_type]
            for d in group:
                code, wait_s = int(reply[at]), int(reply[at + 1]) / 1e6
                at += 2
                self._waits[job_type].observe(wait_s)
                if code == GRANTED:
                    if limit.concurrency:
                        self.held[d.key] = self.keys.limit_leases(job_type)
                    admission.granted.append((d, now_s + wait_s if limit.rate_jobs else 0.0))
                    continue
                name = LIMIT_NAMES[code]
                if code == FOREIGN_KEY and d is group[0]:
                    log.error(
                        "limits of %r not kept: another application holds one of %s as"
                        " another type; its %d job(s) wait %.0f s",
                        *(job_type, ", ".join(self._key_names(job_type)), len(group)),
                        wait_s,
                    )
                self.throttled.labels(*self._labels[job_type], name).inc()
                due_s = wait_s - HOLD_S if code == OVER_RATE else wait_s
                admission.deferred.append((d, max(0.0, due_s), name))

    def _key_names(self, job_type: str) -> tuple[str, str, str]:
        keys = self.keys
        return (
            keys.limit_rate(job_type),
            keys.limit_reserved(job_type),
            keys.limit_leases(job_type),
        )

    def late(self, delivery: Delivery, start_s: float) -> bool:
        """Whether a job granted the start ``start_s`` (`time.time`) is now later than
        its limit's guard (an event loop stalled by a loaded machine, say): it must ask
        again, or N + 1 starts could fall in one period. Counted as throttled (rate)."""
        assert delivery.job is not None
        limit = self.limits[delivery.job.type]
        if time.time() - start_s <= limit.guard_ms / 1000:
            return False
        self.throttled.labels(*self._labels[limit.type], "rate").inc()
        return True

    def release(self, delivery: Delivery) -> None:
        """Give back the lease of a job whose handler ended. Leases given back together
        go in one pipelined call, one at a time (best effort: one not given back
        expires)."""
        key = self.held.pop(delivery.key, None)
        if key is None:
            return
        self._to_release.setdefault(key, []).append(delivery.key)
        if self._releasing is None:
            self._releasing = asyncio.get_running_loop().create_task(self._release_all())

    async def _release_all(self) -> None:
        try:
            while self._to_release:
                batch, self._to_release = self._to_release, {}
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for key, entry_ids in batch.items():
                            pipe.zrem(key, *entry_ids)
                        await pipe.execute()
        finally:
            self._releasing = None

    async def refresh(self) -> None:
        """Push the expiry of every lease this worker holds ``lease_ttl_s`` ahead (the
        heartbeat): a live worker's leases never expire under a long job."""
        if not self.held:
            return
        expiry = int(time.time() * 1000) + self.lease_ttl_ms
        by_key: dict[str, dict[str, int]] = {}
        for entry_id, key in list(self.held.items()):
            by_key.setdefault(key, {})[entry_id] = expiry
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, members in by_key.items():
                pipe.zadd(key, members, xx=True)
            await pipe.execute()
