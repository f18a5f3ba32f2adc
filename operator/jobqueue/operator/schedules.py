"""Cron schedules of a JobQueue: enqueue one job per tick, exactly once, whoever runs it.

The operator's scaling loop (and local mode's poll) calls `Scheduler.fire_due` with the
wall-clock time. For each schedule the due tick is the latest cron time at or before now,
if it is no older than the schedule's ``startingDeadlineSeconds`` (and not before the
JobQueue existed); a tick already handled by this process is skipped without a Redis call.

Exactly once per tick across operator replicas and failovers: only the active Kopf peer
runs the loop, and the job is enqueued with the idempotency key
``schedule:{name}:{tick}`` (`schedule_dedup_key`), which the enqueue script checks and
sets in the same Lua call as the ``XADD`` (a ``SET NX`` made atomic with the job). A new
operator that takes over after a crash re-tries the latest tick: if the old one enqueued
it, Redis answers with that job (``duplicate``) and nothing is added. A tick missed
beyond its deadline is skipped, as a Kubernetes CronJob does; ticks are never replayed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from jobqueue.core.client import AsyncClient
from jobqueue.core.client_types import NewJob
from jobqueue.operator.spec_workloads import ScheduleSpec

SCHEDULE_FIELD = "schedule"
"""Extra wire field of a scheduled job: the schedule's name."""
TICK_FIELD = "scheduled_for"
"""Extra wire field of a scheduled job: its tick, ISO-8601 UTC."""


def schedule_dedup_key(name: str, tick: datetime) -> str:
    """The idempotency key of one tick of one schedule."""
    return f"schedule:{name}:{iso(tick)}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def created_at(body: Mapping[str, Any]) -> datetime:
    """The object's ``creationTimestamp``; ticks before it never fire."""
    stamp = (body.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))


def previous_tick(cron: str, now: datetime) -> datetime:
    """The latest tick of ``cron`` at or before ``now`` (UTC)."""
    # croniter's get_prev is strictly before its start: start one second later.
    start = now.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    found: datetime = croniter(cron, start).get_prev(datetime)
    return found


def next_tick(cron: str, now: datetime) -> datetime:
    """The first tick of ``cron`` strictly after ``now`` (UTC)."""
    found: datetime = croniter(cron, now.astimezone(UTC)).get_next(datetime)
    return found


@dataclass(frozen=True, slots=True)
class Fired:
    """One tick handled: the job enqueued for it, or found already enqueued (duplicate)."""

    name: str
    tick: datetime
    job_id: str
    duplicate: bool


@dataclass
class _Record:
    handled_tick: datetime | None = None
    last_fire: datetime | None = None
    last_job_id: str | None = None


class Scheduler:
    """The schedules of one queue and what this process last did for each."""

    def __init__(self, schedules: Sequence[ScheduleSpec], not_before: datetime) -> None:
        self.schedules = list(schedules)
        self.not_before = not_before
        self._records: dict[str, _Record] = {}

    def update(self, schedules: Sequence[ScheduleSpec]) -> None:
        """Follow a spec change; a changed schedule starts afresh, the others keep state."""
        unchanged = {s.name for s in schedules if s in self.schedules}
        self._records = {k: v for k, v in self._records.items() if k in unchanged}
        self.schedules = list(schedules)

    def due(self, now: datetime) -> list[tuple[ScheduleSpec, datetime]]:
        """The schedules with a tick to handle now, and that tick."""
        found = []
        for schedule in self.schedules:
            tick = previous_tick(schedule.cron, now)
            record = self._records.get(schedule.name)
            late = now - tick > timedelta(seconds=schedule.starting_deadline_seconds)
            if tick < self.not_before or late or (record and record.handled_tick == tick):
                continue
            found.append((schedule, tick))
        return found

    async def fire_due(self, client: AsyncClient, now: datetime) -> list[Fired]:
        """Enqueue the job of every due tick (each once, see the module doc)."""
        due = self.due(now)
        if not due:
            return []
        jobs = [
            NewJob(
                schedule.type,
                schedule.payload,
                priority=schedule.priority,
                idempotency_key=schedule_dedup_key(schedule.name, tick),
                extra={SCHEDULE_FIELD: schedule.name, TICK_FIELD: iso(tick)},
            )
            for schedule, tick in due
        ]
        results = await client.enqueue_many(jobs)
        fired = []
        for (schedule, tick), result in zip(due, results, strict=True):
            record = self._records.setdefault(schedule.name, _Record())
            record.handled_tick = tick
            if not result.duplicate or record.last_job_id is None:
                record.last_fire, record.last_job_id = tick, result.job_id
            fired.append(Fired(schedule.name, tick, result.job_id, result.duplicate))
        return fired

    def status(self, now: datetime) -> list[dict[str, Any]]:
        """``status.schedules``: next fire time, and the last tick this process saw fired."""
        out = []
        for schedule in self.schedules:
            entry: dict[str, Any] = {
                "name": schedule.name,
                "nextFireTime": iso(next_tick(schedule.cron, now)),
            }
            record = self._records.get(schedule.name)
            if record is not None and record.last_fire is not None:
                entry["lastFireTime"] = iso(record.last_fire)
                entry["lastJobId"] = record.last_job_id
            out.append(entry)
        return out
