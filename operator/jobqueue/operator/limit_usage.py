"""What a JobQueue's rate and concurrency limits are doing now, read from Redis.

One pipelined round trip per poll, only for a queue with ``spec.limits``: per limited
type, the running jobs (unexpired leases), how far ahead the rate limiter has booked
starts and how many jobs wait in the delayed set for a reserved start; and whether the
waiting work (the next `TYPE_SAMPLE` entries the group has not delivered) is all of
limited types, which is when the limits bound the replicas worth running
(`jobqueue.operator.policy.limit_slots`). Shown in ``status.limits``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from jobqueue.core.backlog import LaneSample, QueueSample
from jobqueue.core.keys import QueueKeys
from jobqueue.core.limits import TypeLimit

TYPE_SAMPLE = 100
"""Waiting entries whose types tell whether all waiting work is limited."""


@dataclass(frozen=True, slots=True)
class TypeUsage:
    """One limited type, now."""

    limit: TypeLimit
    running: int
    """Jobs of the type holding a concurrency lease (0 without a concurrency limit)."""
    booked_ahead_s: float
    """How far ahead the rate limiter has given out starts, seconds (0: a start is free)."""
    waiting_for_rate: int
    """Jobs in the delayed set holding a reserved start."""

    def as_status(self) -> dict[str, Any]:
        limit = self.limit
        status: dict[str, Any] = {"type": limit.type}
        if limit.concurrency:
            status |= {"running": self.running, "concurrency": limit.concurrency}
        if limit.rate_jobs:
            status |= {
                "ratePerSecond": round(limit.rate_per_s, 4),
                "bookedAheadSeconds": round(self.booked_ahead_s, 1),
                "waitingForRate": self.waiting_for_rate,
            }
        return status


@dataclass(frozen=True, slots=True)
class LimitUsage:
    types: tuple[TypeUsage, ...]
    only_limited_waiting: bool
    """No type without a limit among the waiting entries sampled."""

    def as_status(self) -> list[dict[str, Any]]:
        return [usage.as_status() for usage in self.types]


async def read_limit_usage(
    redis: Redis,
    keys: QueueKeys,
    limits: tuple[TypeLimit, ...],
    positions: Sequence[tuple[str, str]],
) -> LimitUsage | None:
    """The usage of ``limits`` (None when there are none); one pipelined call.
    ``positions``: each ready stream (the queue's, or each priority lane's) with the
    group's last delivered entry there; the entries after it are the waiting work."""
    if not limits:
        return None
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for limit in limits:
            pipe.zcount(keys.limit_leases(limit.type), now_ms, "+inf")
            pipe.get(keys.limit_rate(limit.type))
            pipe.zcard(keys.limit_reserved(limit.type))
        for stream, last_delivered_id in positions:
            after = f"({last_delivered_id}" if last_delivered_id not in ("", "0-0") else "-"
            pipe.xrange(stream, after, "+", count=TYPE_SAMPLE)
        replies = await pipe.execute()
    usages = []
    for n, limit in enumerate(limits):
        running, tat, reserved = replies[3 * n : 3 * n + 3]
        ahead_s = max(0.0, (float(tat) - now_ms) / 1000) if tat else 0.0
        usages.append(TypeUsage(limit, int(running), ahead_s, int(reserved)))
    limited = {limit.type for limit in limits}
    entries = [entry for reply in replies[3 * len(limits) :] for entry in reply]
    waiting = {_text(fields.get("type", fields.get(b"type", ""))) for _, fields in entries}
    return LimitUsage(tuple(usages), waiting <= limited)


async def sample_limit_usage(
    redis: Redis, keys: QueueKeys, limits: tuple[TypeLimit, ...], sample: QueueSample
) -> LimitUsage | None:
    """`read_limit_usage` after the group's last delivered entry in ``sample``, in the
    queue's stream or, with priority lanes, in every lane's (work waiting in any lane
    counts)."""
    if not sample.lanes:
        return await read_limit_usage(redis, keys, limits, [(keys.stream, _last(keys, sample))])
    positions = [(lane.stream, _last(keys, lane)) for lane in sample.lanes]
    return await read_limit_usage(redis, keys, limits, positions)


def _last(keys: QueueKeys, sample: QueueSample | LaneSample) -> str:
    """The group's last delivered entry id in the sampled stream ("0-0": none yet)."""
    own = [g for g in sample.groups if g.name == keys.group]
    return own[0].last_delivered_id if own else "0-0"


async def sample_partitions_usage(
    redis: Redis,
    partitions: list[QueueKeys],
    limits: tuple[TypeLimit, ...],
    samples: list[QueueSample],
) -> LimitUsage | None:
    """The queue's usage of ``limits`` over its partitions (each partition's limiter
    holds its share, `jobqueue.core.partitions.partition_limits`): running jobs and
    reserved starts added, the rate's booking the furthest ahead, only limited types
    waiting when that holds in every partition."""
    usages = [
        await sample_limit_usage(redis, keys, limits, sample)
        for keys, sample in zip(partitions, samples, strict=True)
    ]
    found = [u for u in usages if u is not None]
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    types = tuple(
        TypeUsage(
            limit,
            sum(u.types[n].running for u in found),
            max(u.types[n].booked_ahead_s for u in found),
            sum(u.types[n].waiting_for_rate for u in found),
        )
        for n, limit in enumerate(limits)
    )
    return LimitUsage(types, all(u.only_limited_waiting for u in found))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
