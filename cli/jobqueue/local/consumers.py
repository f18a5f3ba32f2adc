"""Removing the group's consumers of local worker processes that are gone.

A stopped or killed worker leaves its consumer in the group. The operator's reaper
(`jobqueue.operator.consumers`) deletes such consumers only once they hold no pending
entry, so nothing is orphaned; local mode limits it to the names its own workers carry
(any other consumer, of other machines or other queues, is left alone).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from redis.asyncio import Redis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import NO_LANES, Lanes
from jobqueue.operator.consumers import ReapResult, reap_dead_consumers


def local_consumer_pattern(queue_name: str) -> re.Pattern[str]:
    """Names `jobqueue.local.pool.WorkerPool` gives its workers, in any run:
    ``{queue}-{4 hex}-w{n}``."""
    return re.compile(rf"{re.escape(queue_name)}-[0-9a-f]{{4}}-w\d+")


async def reap_local_consumers(
    redis: Redis,
    keys: QueueKeys,
    pattern: re.Pattern[str],
    running: Collection[str],
    lanes: Lanes = NO_LANES,
) -> ReapResult:
    """Delete consumers matching ``pattern`` that are not ``running`` and hold nothing
    (on every lane's stream)."""
    return await reap_dead_consumers(redis, keys, running, owned=pattern.fullmatch, lanes=lanes)
