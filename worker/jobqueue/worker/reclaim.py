"""Taking over entries whose consumer went quiet.

An entry idle in any consumer's pending list for longer than the visibility timeout
belongs to a worker that died (a live worker refreshes the claims of its jobs, see
`heartbeat`). The sweep pages through the whole pending list but claims no more than
this worker's free capacity (reserved while the claim is on the wire). It claims with
`CrashLedger.take_idle`, which also blames the entries the dead worker had started, so
each claimed entry is handed on with how often a worker died running it and a job that
keeps killing workers is dead-lettered instead of being retried forever.

Consumers left behind by pods that no longer exist are removed from the group, but only
once they hold nothing (checked and deleted in one script, so an entry is never dropped).
With lanes, each lane stream is swept (highest first) and pruned the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.consumers import delete_consumer_if_idle
from jobqueue.core.keys import QueueKeys
from jobqueue.worker.inflight import InFlight
from jobqueue.worker.lanes import LaneStream
from jobqueue.worker.metrics import WorkerMetrics
from jobqueue.worker.reader import Dispatch

log = logging.getLogger("jobqueue.worker")


class Reclaimer:
    """One worker's periodic sweep of idle entries."""

    def __init__(
        self,
        redis: AsyncRedis,
        keys: QueueKeys,
        consumer: str,
        inflight: InFlight,
        metrics: WorkerMetrics,
        visibility_timeout_s: float,
        dispatch: Dispatch,
        lanes: Sequence[LaneStream],
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.inflight = inflight
        self.metrics = metrics
        self.min_idle_ms = int(visibility_timeout_s * 1000)
        self.dispatch = dispatch
        self.lanes = lanes

    async def sweep(self) -> int:
        """Claim idle entries up to the free capacity, highest lane first; returns how
        many were claimed."""
        claimed = 0
        for lane in self.lanes:
            claimed += await self._sweep(lane)
        return claimed

    async def _sweep(self, lane: LaneStream) -> int:
        cursor, claimed, prefix = "-", 0, lane.prefix
        while self.inflight.free > 0:
            count = self.inflight.reserve_free()
            try:
                cursor, taken = await lane.ledger.take_idle(self.min_idle_ms, cursor, count)
                fresh = [entry for entry in taken if prefix + entry[0] not in self.inflight]
                if fresh:
                    log.info("reclaimed %d idle entries of %s", len(fresh), lane.stream)
                    self.metrics.reclaimed.inc(len(fresh))
                    await self.dispatch(fresh, lane)
            finally:
                self.inflight.unreserve(count)
            claimed += len(fresh)
            if cursor == "0-0":
                break
        return claimed

    async def prune_consumers(self, idle_ms: int) -> list[str]:
        """Remove other consumers idle for ``idle_ms`` that hold no entries (from each
        lane stream's group: a consumer is idle or not per stream)."""
        removed: list[str] = []
        for lane in self.lanes:
            for info in await self.redis.xinfo_consumers(lane.stream, self.keys.group):
                name = info["name"]
                if name == self.consumer or int(info["pending"]) or int(info["idle"]) < idle_ms:
                    continue
                if await delete_consumer_if_idle(self.redis, lane.keys, name):
                    removed.append(name)
        if removed:
            log.info("removed consumers of departed workers: %s", ", ".join(sorted(set(removed))))
        return removed
