"""Keeping the claims of in-flight jobs fresh, and noticing cancellations.

Every ``heartbeat_interval_s`` the worker re-claims its in-flight entries for itself
(``XCLAIM ... JUSTID`` with min-idle 0 resets their idle time without counting a
delivery; with lanes, in each entry's own lane stream), so a job that runs longer than
the visibility timeout is never reclaimed by another worker while this one is alive. In
the same pipeline it reads each job's ``cancel_requested`` flag and cancels the handlers
of jobs the client cancelled.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import QueueKeys
from jobqueue.worker.inflight import InFlight

log = logging.getLogger("jobqueue.worker")
CLAIM_CHUNK = 500


class Heartbeat:
    """One beat: refresh claims, then act on cancellation requests."""

    def __init__(
        self, redis: AsyncRedis, keys: QueueKeys, consumer: str, inflight: InFlight
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.inflight = inflight

    async def beat(self) -> int:
        """Refresh every in-flight claim; returns how many jobs were asked to cancel."""
        deliveries = list(self.inflight.deliveries.values())
        if not deliveries:
            return 0
        by_stream: dict[str, list[int | bytes | str | memoryview]] = {}
        for d in deliveries:  # each entry is claimed in its own (lane) stream
            stream = d.lane.stream if d.lane is not None else self.keys.stream
            by_stream.setdefault(stream, []).append(d.entry_id)
        with_job = [d for d in deliveries if d.job is not None]
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, entry_ids in by_stream.items():
                for start in range(0, len(entry_ids), CLAIM_CHUNK):
                    chunk = entry_ids[start : start + CLAIM_CHUNK]
                    pipe.xclaim(stream, self.keys.group, self.consumer, 0, chunk, justid=True)
            for d in with_job:
                assert d.job is not None
                pipe.hget(self.keys.status(d.job.id), "cancel_requested")
            replies = await pipe.execute()
        flags = replies[len(replies) - len(with_job) :]
        cancelled = 0
        for d, flag in zip(with_job, flags, strict=True):
            if flag == "1" and d.handler_running and not d.cancel_requested and d.task:
                assert d.job is not None
                log.info("job %s: cancellation requested, stopping its handler", d.job.id)
                d.cancel_requested = True
                d.task.cancel()
                cancelled += 1
        return cancelled
