"""Lane streams a JobQueue's spec no longer declares that still hold jobs.

Workers read only the lanes of the current table: a lane removed from ``spec.lanes``
(or one whose stream changed, e.g. a lane that now holds priority 5 and so reads the
queue's own stream) leaves its old stream unread, and the jobs in it wait until the
lane comes back or someone moves them. Nothing else would tell: the queue's lag counts
the declared lanes only. So the operator remembers the lane streams it has shown in
``status.lanes`` and, while one of them is undeclared and still holds work (waiting or
unacknowledged), lists it there with ``orphaned: true`` and sets the ``LanesOrphaned``
condition with a Warning Event. Such a lane is not counted in the backlog the autoscaler
scales on: no worker would read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from jobqueue.core.backlog import sample_queue
from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import Lanes


def shown_lane_streams(status: Mapping[str, Any]) -> dict[str, str]:
    """Stream -> lane name of every lane in a JobQueue's ``status.lanes`` (partition 0's
    streams, as written)."""
    rows = status.get("lanes") or []
    return {
        str(row["stream"]): str(row.get("name", ""))
        for row in rows
        if isinstance(row, Mapping) and row.get("stream")
    }


async def orphaned_lanes(
    redis: Redis, partitions: Sequence[QueueKeys], lanes: Lanes, known: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The ``status.lanes`` rows of the ``known`` lane streams (stream -> lane name, in
    partition 0) that ``lanes`` no longer reads and that still hold jobs, summed over
    the partitions; empty when there is none."""
    first = partitions[0]
    declared = set(lanes.streams(first))
    rows = []
    for stream, name in known.items():
        if stream in declared or stream != first.lane(name):
            continue  # still read, or not a lane stream of this queue (never orphaned)
        lag = pending = 0
        for keys in partitions:
            sample = await sample_queue(redis, keys.of_stream(keys.lane(name)))
            lag, pending = lag + sample.lag, pending + sample.pending
        if lag or pending:
            rows.append(
                {"name": name, "stream": stream, "lag": lag, "pending": pending, "orphaned": True}
            )
    return rows


def orphan_message(rows: Sequence[Mapping[str, Any]]) -> str:
    """What the ``LanesOrphaned`` condition and Event say."""
    each = ", ".join(f"{row['name']} ({row['lag'] + row['pending']} jobs)" for row in rows)
    return (
        f"lanes no longer in spec.lanes still hold jobs no worker reads: {each}; declare "
        "them again, or move their entries to a declared lane's stream"
    )
