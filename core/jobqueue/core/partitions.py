"""Partitioned queues: which partition a job goes to, and the queue summed over them.

A queue with ``partitions: N`` is N independent `QueueKeys` units
(`jobqueue.core.keys.partition_streams`), each in its own Redis Cluster slot; a job lives
in exactly one of them, from its enqueue to its status record's expiry, and no script
ever touches two.

Where a job goes (`partition_for`), first rule that applies:

1. its ``partition_key``: every job with the same key goes to the same partition, in
   enqueue order (per-key ordering);
2. its ``idempotency_key``: a repeat with the key meets the first job's key;
3. its id (a fresh ULID, or the caller's ``job_id``): a repeat of an id meets the first
   job's record, and fresh ULIDs spread evenly (their random part is uniform).

Rule 3 makes the id's partition its *home*: a lookup by id (status, wait, cancel) asks
the home partition first and the others only when the job is not there (it was placed
by rule 1 or 2), all of them at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import zlib
from collections.abc import Sequence

from redis.asyncio import Redis

from jobqueue.core.backlog import (
    GroupSample,
    LaneSample,
    QueueSample,
    parse_entry_id,
    sample_queue,
)
from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import NO_LANES, Lanes
from jobqueue.core.limits import TypeLimit


def partition_of(text: str, partitions: int) -> int:
    """The partition ``text`` (a partition key, an idempotency key or a job id) hashes to:
    CRC-32 of its UTF-8 bytes modulo ``partitions``, the same in every process."""
    if partitions == 1:
        return 0
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) % partitions


def partition_for(
    job_id: str, partitions: int, *, partition_key: str | None, idempotency_key: str | None
) -> int:
    """The partition a job is enqueued to (rules in the module docstring)."""
    return partition_of(partition_key or idempotency_key or job_id, partitions)


def lookup_order(job_id: str, partitions: int) -> list[int]:
    """Partitions to look for ``job_id`` in: its home first, then every other one."""
    home = partition_of(job_id, partitions)
    return [home, *(p for p in range(partitions) if p != home)]


def partition_limits(
    limits: Sequence[TypeLimit], partitions: int, index: int
) -> tuple[TypeLimit, ...]:
    """Partition ``index``'s share of the queue's ``limits``, which each partition's
    limiter enforces on its own keys: a rate limit's period times ``partitions`` (N per
    period for the queue, when the jobs of the type spread evenly: they do by id), a
    concurrency limit divided, at least 1 (so below ``partitions`` the queue may run one
    per partition)."""
    if partitions == 1:
        return tuple(limits)
    shares = []
    for limit in limits:
        base, extra = divmod(limit.concurrency, partitions)
        concurrency = max(1, base + (1 if index < extra else 0)) if limit.concurrency else 0
        period = limit.rate_period_s * partitions
        shares.append(dataclasses.replace(limit, rate_period_s=period, concurrency=concurrency))
    return tuple(shares)


def parse_partition_list(text: str) -> tuple[int, ...]:
    """``"0,2,5-7"`` as sorted partition numbers (ValueError when malformed)."""
    chosen: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        low, dash, high = item.partition("-")
        first = int(low)
        last = int(high) if dash else first
        if first < 0 or last < first:
            raise ValueError(f"bad partition range {item!r}")
        chosen.update(range(first, last + 1))
    if not chosen:
        raise ValueError("no partition named")
    return tuple(sorted(chosen))


async def sample_partitions(
    redis: Redis,
    partitions: Sequence[QueueKeys],
    *,
    lanes: Lanes = NO_LANES,
    with_consumers: bool = False,
) -> list[QueueSample]:
    """A snapshot of every partition (each with its ``lanes``), in partition order, all
    asked at once (on a cluster each goes to its own node)."""
    return list(
        await asyncio.gather(
            *(
                sample_queue(redis, keys, lanes=lanes, with_consumers=with_consumers)
                for keys in partitions
            )
        )
    )


def sum_samples(
    samples: Sequence[QueueSample], stream: str, *, shared_dead: bool = False
) -> QueueSample:
    """One queue's snapshot from its partitions' snapshots: counts summed, the oldest
    waiting entry the oldest of all, consumer groups merged by name.

    A consumer reads every partition it is given under the same name, so a group's
    consumers are counted once each (by name when the samples have names, else the
    most any partition has)."""
    if len(samples) == 1:
        return samples[0]
    groups: dict[str, list[GroupSample]] = {}
    for sample in samples:
        for group in sample.groups:
            groups.setdefault(group.name, []).append(group)
    oldest = [s.oldest_waiting_id for s in samples if s.oldest_waiting_id is not None]
    sources = {s.lag_source for s in samples}
    return QueueSample(
        stream=stream,
        group=samples[0].group,
        length=sum(s.length for s in samples),
        entries_added=sum(s.entries_added for s in samples),
        lag=sum(s.lag for s in samples),
        pending=sum(s.pending for s in samples),
        delayed=sum(s.delayed for s in samples),
        # Partitions share one dead-letter stream when it is named (JOBQUEUE_DEAD_STREAM):
        # every sample then counted the same stream.
        dead_letters=samples[0].dead_letters
        if shared_dead
        else sum(s.dead_letters for s in samples),
        lag_source=sources.pop() if len(sources) == 1 else "mixed",
        groups=tuple(_merge_groups(name, parts) for name, parts in groups.items()),
        oldest_waiting_id=min(oldest, key=parse_entry_id) if oldest else None,
        lanes=_merge_lanes(samples),
    )


def _merge_lanes(samples: Sequence[QueueSample]) -> tuple[LaneSample, ...]:
    """Each priority lane summed over the partitions (every partition has the same
    lanes; ``stream`` is partition 0's)."""
    merged = []
    for parts in zip(*(s.lanes for s in samples), strict=True):
        oldest = [p.oldest_waiting_id for p in parts if p.oldest_waiting_id is not None]
        sources = {p.lag_source for p in parts}
        merged.append(
            LaneSample(
                name=parts[0].name,
                stream=parts[0].stream,
                length=sum(p.length for p in parts),
                entries_added=sum(p.entries_added for p in parts),
                lag=sum(p.lag for p in parts),
                pending=sum(p.pending for p in parts),
                lag_source=sources.pop() if len(sources) == 1 else "mixed",
                oldest_waiting_id=min(oldest, key=parse_entry_id) if oldest else None,
            )
        )
    return tuple(merged)


def partition_rows(samples: Sequence[QueueSample]) -> list[dict[str, object]]:
    """Each partition's counts, for status documents (``partitions`` of the producer's
    stats and of a JobQueue's status)."""
    return [
        {
            "partition": index,
            "stream": s.stream,
            "length": s.length,
            "lag": s.lag,
            "pending": s.pending,
            "delayed": s.delayed,
            "deadLetters": s.dead_letters,
        }
        for index, s in enumerate(samples)
    ]


def _merge_groups(name: str, parts: list[GroupSample]) -> GroupSample:
    names = tuple(sorted({n for g in parts for n in g.consumer_names}))
    sources = {g.lag_source for g in parts}
    oldest = min((g.last_delivered_id for g in parts), key=parse_entry_id)
    reads = [g.entries_read for g in parts]
    return GroupSample(
        name=name,
        consumers=len(names) if names else max(g.consumers for g in parts),
        pending=sum(g.pending for g in parts),
        last_delivered_id=oldest,
        entries_read=None if None in reads else sum(r or 0 for r in reads),
        lag=sum(g.lag for g in parts),
        lag_source=sources.pop() if len(sources) == 1 else "mixed",
        consumer_names=names,
    )
