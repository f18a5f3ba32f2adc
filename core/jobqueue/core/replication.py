"""Replicated enqueue: a job counts as accepted once enough replicas hold it (``WAIT``).

Redis replicates asynchronously: a primary answers a write before any replica has it,
so a primary lost right after an enqueue (a failover) can take the job with it. With
``enqueue_min_replicas`` set, the enqueue script and ``WAIT min_replicas timeout_ms``
go out together on one connection (``WAIT`` counts the replicas that acknowledged
*that connection's* writes), and the enqueue returns only when that many replicas
acknowledged. Fewer in time, or the connection lost on the way, raises
`EnqueueUnconfirmed` with the job ids: the outcome is unknown, never reported as a
success. What this does and does not guarantee: docs/internals.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis as AsyncRedis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, TimeoutError

from jobqueue.core.errors import EnqueueUnconfirmed


async def enqueue_replicated(
    redis: AsyncRedis,
    script: AsyncScript,
    calls: Sequence[tuple[list[str], list[bytes | str]]],
    job_ids: list[str],
    *,
    min_replicas: int,
    timeout_ms: int,
) -> list[Any]:
    """Run the enqueue ``script`` once per (keys, args) of ``calls`` (several: in one
    MULTI/EXEC), then ``WAIT``; the script calls' replies once ``min_replicas`` replicas
    hold the jobs ``job_ids``."""
    # A plain pipeline with MULTI/EXEC spelled out: redis-py's transactional pipeline
    # would wrap the WAIT into the transaction too, where it cannot wait.
    async with redis.pipeline(transaction=False) as pipe:
        transaction = len(calls) > 1
        if transaction:
            pipe.execute_command("MULTI")
        for keys, args in calls:
            await script(keys=keys, args=args, client=pipe)
        if transaction:
            pipe.execute_command("EXEC")
        pipe.execute_command("WAIT", min_replicas, timeout_ms)
        try:
            replies = await pipe.execute()
        except (ConnectionError, TimeoutError) as exc:
            raise EnqueueUnconfirmed(job_ids, f"connection lost: {exc}") from exc
    acknowledged = int(replies[-1])
    if acknowledged < min_replicas:
        raise EnqueueUnconfirmed(
            job_ids,
            f"{acknowledged} of {min_replicas} replicas acknowledged within {timeout_ms} ms",
        )
    return list(replies[-2]) if transaction else replies[:-1]
