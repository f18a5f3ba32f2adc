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
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.consumers import delete_consumer_if_idle
from jobqueue.core.keys import QueueKeys
from jobqueue.worker.crashes import CrashLedger
from jobqueue.worker.inflight import InFlight
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
        ledger: CrashLedger,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.inflight = inflight
        self.metrics = metrics
        self.min_idle_ms = int(visibility_timeout_s * 1000)
        self.dispatch = dispatch
        self.ledger = ledger

    async def sweep(self) -> int:
        """Claim idle entries up to the free capacity; returns how many were claimed."""
        cursor, claimed = "-", 0
        while self.inflight.free > 0:
            count = self.inflight.reserve_free()
            try:
                cursor, taken = await self.ledger.take_idle(self.min_idle_ms, cursor, count)
                fresh = [entry for entry in taken if entry[0] not in self.inflight]
                if fresh:
                    log.info("reclaimed %d idle entries", len(fresh))
                    self.metrics.reclaimed.inc(len(fresh))
                    await self.dispatch(fresh)
            finally:
                self.inflight.unreserve(count)
            claimed += len(fresh)
            if cursor == "0-0":
                break
        return claimed

    async def prune_consumers(self, idle_ms: int) -> list[str]:
        """Remove other consumers idle for ``idle_ms`` that hold no entries."""
        removed = []
        for info in await self.redis.xinfo_consumers(self.keys.stream, self.keys.group):
            name = info["name"]
            if name == self.consumer or int(info["pending"]) or int(info["idle"]) < idle_ms:
                continue
            if await delete_consumer_if_idle(self.redis, self.keys, name):
                removed.append(name)
        if removed:
            log.info("removed consumers of departed workers: %s", ", ".join(removed))
        return removed
