"""Local mode's cron schedules: the operator's `Scheduler`, on local mode's poll.

The same ``schedules`` of the same JobQueue YAML enqueue the same jobs as on Kubernetes,
with the same per-tick idempotency key, so a local run next to an operator on the same
Redis and queue never doubles a tick either. Ticks count from when local mode started.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from jobqueue.core.client import AsyncClient
from jobqueue.operator.schedules import Scheduler, iso, next_tick
from jobqueue.operator.spec_workloads import ScheduleSpec


def utc_now() -> datetime:
    return datetime.now(UTC)


class LocalSchedules:
    """The queue's schedules, fired when due; each fired tick becomes an event line."""

    def __init__(
        self,
        schedules: list[ScheduleSpec],
        on_event: Callable[[str], None],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._clock = clock
        self._event = on_event
        self.scheduler = Scheduler(schedules, not_before=clock())

    def describe(self) -> list[str]:
        """One line per schedule: its cron, job type and next tick (for the start)."""
        now = self._clock()
        return [
            f"schedule {s.name}: {s.cron} -> {s.type} job, next at {iso(next_tick(s.cron, now))}"
            for s in self.scheduler.schedules
        ]

    async def fire(self, client: AsyncClient) -> int:
        """Enqueue the due ticks' jobs; how many ticks were handled."""
        fired = await self.scheduler.fire_due(client, self._clock())
        for tick in fired:
            note = " (already enqueued elsewhere)" if tick.duplicate else ""
            self._event(f"schedule {tick.name}: job {tick.job_id} for {iso(tick.tick)}{note}")
        return len(fired)
