"""Removing the group's consumers of local worker processes that are gone.

A stopped or killed worker leaves its consumer in the group. The operator's reaper
(`jobqueue.operator.consumers`) deletes such consumers only once they hold no pending
entry, so nothing is orphaned; local mode calls it with every consumer it does not own
(other machines, other runs of other queues) counted as alive, so it only ever removes
its own workers' consumers.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from jobqueue.core.keys import QueueKeys
from jobqueue.operator.consumers import ReapResult, reap_dead_consumers


def local_consumer_pattern(queue_name: str) -> re.Pattern[str]:
    """Names `jobqueue.local.pool.WorkerPool` gives its workers, in any run:
    ``{queue}-{4 hex}-w{n}``."""
    return re.compile(rf"{re.escape(queue_name)}-[0-9a-f]{{4}}-w\d+")


async def reap_local_consumers(
    redis: Redis, keys: QueueKeys, pattern: re.Pattern[str], running: Collection[str]
) -> ReapResult:
    """Delete consumers matching ``pattern`` that are not ``running`` and hold nothing."""
    try:
        consumers = await redis.xinfo_consumers(keys.stream, keys.group)
    except ResponseError as exc:
        if "no such key" in str(exc).lower() or "nogroup" in str(exc).lower():
            return ReapResult()
        raise
    names = {str(consumer["name"]) for consumer in consumers}
    spared = {name for name in names if not pattern.fullmatch(name)} | set(running)
    return await reap_dead_consumers(redis, keys, spared)
