"""Removing the consumers of worker pods that no longer exist, without orphaning a job.

Each worker pod reads as the consumer named after its pod (``POD_NAME``). When a pod is
gone its consumer stays in the group forever unless someone deletes it; but deleting a
consumer that still holds pending entries would drop those entries from the PEL, and
with them every chance of reclaiming the jobs. So a consumer is deleted only when:

- no pod of the JobQueue carries its name, and
- it has no pending entries — checked and deleted in one Lua script, so an entry cannot
  slip in between (the others reclaim its entries with ``XAUTOCLAIM`` first).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from jobqueue.core.consumers import delete_consumer_if_idle
from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import NO_LANES, Lanes


@dataclass(frozen=True, slots=True)
class ReapResult:
    """What one pass did: consumers deleted, and dead ones kept for their pending jobs."""

    deleted: tuple[str, ...] = ()
    kept_pending: tuple[str, ...] = ()


async def reap_dead_consumers(
    redis: Redis,
    keys: QueueKeys,
    live_pods: Collection[str],
    min_idle_ms: int = 0,
    owned: Callable[[str], object] | None = None,
    lanes: Lanes = NO_LANES,
) -> ReapResult:
    """Delete the group's consumers that match no live pod and hold nothing, on the
    queue's stream and on each of its priority ``lanes``' streams (a consumer is in the
    group of every lane it read; each stream's own pending entries decide there).

    ``min_idle_ms`` spares consumers that were active recently (a pod that is starting
    may read before it shows up in a pod listing taken a moment earlier). ``owned``, when
    given, limits the candidates to the consumer names it accepts (local mode: its own
    workers' names); every other consumer is left alone.
    """
    deleted: dict[str, None] = {}
    kept: dict[str, None] = {}
    for stream in lanes.streams(keys):
        result = await _reap_stream(redis, keys.of_stream(stream), live_pods, min_idle_ms, owned)
        deleted.update(dict.fromkeys(result.deleted))
        kept.update(dict.fromkeys(result.kept_pending))
    # A consumer still holding entries in one lane is not gone yet, whatever the others.
    return ReapResult(deleted=tuple(d for d in deleted if d not in kept), kept_pending=tuple(kept))


async def _reap_stream(
    redis: Redis,
    keys: QueueKeys,
    live_pods: Collection[str],
    min_idle_ms: int,
    owned: Callable[[str], object] | None,
) -> ReapResult:
    try:
        consumers = await redis.xinfo_consumers(keys.stream, keys.group)
    except ResponseError as exc:
        if "no such key" in str(exc).lower() or "nogroup" in str(exc).lower():
            return ReapResult()
        raise
    deleted, kept = [], []
    for consumer in consumers:
        name = str(consumer["name"])
        if name in live_pods or int(consumer.get("idle", 0)) < min_idle_ms:
            continue
        if owned is not None and not owned(name):
            continue
        if await delete_consumer_if_idle(redis, keys, name):
            deleted.append(name)
        else:
            kept.append(name)
    return ReapResult(deleted=tuple(deleted), kept_pending=tuple(kept))
