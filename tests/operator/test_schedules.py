"""Cron schedules: one job per tick, never two, whoever fires it; a clock the tests move.

The `Scheduler` is driven directly against a real Redis (two schedulers stand for two
operator replicas, or one before and one after a failover); then the whole operator runs
against the Kubernetes API emulator with its wall clock in the test's hands.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from support.kube_emulator import JOBQUEUES, NAMESPACE, KubeEmulator, apply, eventually, jobqueue

from jobqueue.core.client import AsyncClient
from jobqueue.core.errors import ConfigError
from jobqueue.operator.schedules import Scheduler, next_tick, previous_tick
from jobqueue.operator.settings import OperatorSettings
from jobqueue.operator.spec import parse_spec
from jobqueue.operator.spec_workloads import ScheduleSpec

T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
STREAM = "cron:work"


def hourly(**extra: Any) -> ScheduleSpec:
    return ScheduleSpec.model_validate(
        {"name": "report", "cron": "0 * * * *", "type": "report", "payload": {"k": 1}, **extra}
    )


@pytest.fixture
async def client(redis_url: str) -> Any:
    async with AsyncClient.from_url(redis_url, stream=STREAM) as queue_client:
        yield queue_client


async def jobs(redis: Redis) -> list[dict[str, str]]:
    return [fields for _, fields in await redis.xrange(STREAM)]


def test_ticks_are_the_cron_times_around_now() -> None:
    assert previous_tick("0 * * * *", T0) == T0  # a tick at exactly now is due now
    assert previous_tick("0 * * * *", T0 + timedelta(minutes=59)) == T0
    assert next_tick("0 * * * *", T0) == T0 + timedelta(hours=1)
    assert next_tick("@daily", T0) == datetime(2026, 3, 2, tzinfo=UTC)


async def test_a_tick_enqueues_one_job_with_the_schedules_fields(
    client: AsyncClient, redis_client: Redis
) -> None:
    scheduler = Scheduler([hourly(priority=8)], not_before=T0 - timedelta(days=1))

    [fired] = await scheduler.fire_due(client, T0 + timedelta(seconds=3))

    assert (fired.name, fired.tick, fired.duplicate) == ("report", T0, False)
    [job] = await jobs(redis_client)
    assert (job["type"], job["payload"], job["priority"]) == ("report", '{"k":1}', "8")
    assert (job["schedule"], job["scheduled_for"]) == ("report", "2026-03-01T10:00:00Z")
    assert job["id"] == fired.job_id
    # the same tick again, later in the hour: nothing (no Redis call needed either)
    assert await scheduler.fire_due(client, T0 + timedelta(minutes=30)) == []
    # the next tick: the next job
    [second] = await scheduler.fire_due(client, T0 + timedelta(hours=1, seconds=1))
    assert second.tick == T0 + timedelta(hours=1)
    assert len(await jobs(redis_client)) == 2
    [status] = scheduler.status(T0 + timedelta(hours=1, seconds=1))
    assert status == {
        "name": "report",
        "nextFireTime": "2026-03-01T12:00:00Z",
        "lastFireTime": "2026-03-01T11:00:00Z",
        "lastJobId": second.job_id,
    }


async def test_two_replicas_or_a_failover_never_enqueue_a_tick_twice(
    client: AsyncClient, redis_client: Redis
) -> None:
    # Given the old leader fired the 10:00 tick and died; a new one starts with no memory
    old = Scheduler([hourly()], not_before=T0 - timedelta(days=1))
    [first] = await old.fire_due(client, T0 + timedelta(seconds=1))
    new = Scheduler([hourly()], not_before=T0 - timedelta(days=1))

    # When the new one sees the same tick (and the old one, back from a pause, too)
    [again] = await new.fire_due(client, T0 + timedelta(seconds=40))
    assert await old.fire_due(client, T0 + timedelta(seconds=41)) == []

    # Then Redis answered with the first job: one job for the tick
    assert (again.duplicate, again.job_id) == (True, first.job_id)
    assert len(await jobs(redis_client)) == 1
    assert new.status(T0 + timedelta(seconds=40))[0]["lastJobId"] == first.job_id


async def test_a_tick_missed_past_its_deadline_or_before_the_queue_existed_is_skipped(
    client: AsyncClient, redis_client: Redis
) -> None:
    # An operator down from 09:59 to 10:06 with a 5-minute deadline skips the 10:00 tick
    late = Scheduler([hourly(startingDeadlineSeconds=300)], not_before=T0 - timedelta(days=1))
    assert await late.fire_due(client, T0 + timedelta(minutes=6)) == []
    # A JobQueue created at 10:20 does not fire the 10:00 tick, however long the deadline
    fresh = Scheduler([hourly(startingDeadlineSeconds=3600)], not_before=T0 + timedelta(minutes=20))
    assert await fresh.fire_due(client, T0 + timedelta(minutes=21)) == []
    assert await jobs(redis_client) == []


async def test_a_changed_schedule_starts_afresh_and_an_unchanged_one_keeps_its_state(
    client: AsyncClient, redis_client: Redis
) -> None:
    scheduler = Scheduler([hourly()], not_before=T0 - timedelta(days=1))
    await scheduler.fire_due(client, T0 + timedelta(seconds=1))
    scheduler.update([hourly()])
    assert scheduler.due(T0 + timedelta(seconds=2)) == []
    scheduler.update([hourly(payload={"k": 2})])
    # the tick was enqueued already: Redis says so, no second job
    [fired] = await scheduler.fire_due(client, T0 + timedelta(seconds=3))
    assert fired.duplicate
    assert len(await jobs(redis_client)) == 1


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"cron": "61 * * * *"}, "not a cron expression"),
        ({"cron": "* * * * * *"}, "not a cron expression"),
        ({"name": "Has Spaces"}, "pattern"),
        ({"priority": 11}, "less than or equal to 10"),
    ],
)
def test_a_bad_schedule_is_refused(schedule: dict[str, Any], message: str) -> None:
    good = {"name": "r", "cron": "0 * * * *", "type": "report"}
    with pytest.raises(ConfigError, match=message):
        parse_spec({"worker": {"image": "x", "app": "a:b"}, "schedules": [{**good, **schedule}]})


def test_schedule_names_are_unique() -> None:
    twice = [{"name": "r", "cron": "0 * * * *", "type": "a"}] * 2
    with pytest.raises(ConfigError, match="unique"):
        parse_spec({"worker": {"image": "x", "app": "a:b"}, "schedules": twice})


class MovableClock:
    """The operator's wall clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def schedule_status(kube: KubeEmulator, name: str) -> dict[str, Any] | None:
    body = kube.get(JOBQUEUES, NAMESPACE, name) or {}
    found = body.get("status", {}).get("schedules") or [None]
    return found[0]  # type: ignore[no-any-return]


async def test_two_operators_at_once_enqueue_each_tick_once_and_report_the_next(
    kube: KubeEmulator,
    start_operator: Any,
    operator_settings: OperatorSettings,
    redis_url: str,
    redis_client: Redis,
) -> None:
    # Given two operators acting at once (as in a failover's overlap), sharing a clock,
    # and a queue created clear of a minute's first second (a tick at its creation
    # second is one to fire, rightly, and the test counts from no tick at creation)
    second = datetime.now(UTC).second
    if second in (57, 58, 59, 0):
        await asyncio.sleep((61 - second) % 60 or 1)
    start = datetime.now(UTC).replace(microsecond=0)
    clock = MovableClock(start)
    minute = start.replace(second=0) + timedelta(minutes=1)
    schedule = {"name": "ping", "cron": "* * * * *", "type": "noop", "payload": {"n": 1}}
    body = jobqueue("cron", redis_url, schedules=[schedule])
    async with (
        start_operator(operator_settings, clock),
        start_operator(operator_settings, clock),
    ):
        await apply(kube, body)
        first = await eventually(lambda: schedule_status(kube, "cron"), what="schedule status")
        assert first["nextFireTime"] == minute.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert await redis_client.xlen("cron:work") == 0  # no tick since the queue exists

        # When the clock passes a minute, then one job (not two) and the status says so
        clock.now = minute + timedelta(seconds=2)
        fired = await eventually(
            lambda: (s := schedule_status(kube, "cron")) and "lastJobId" in s and s,
            what="a fired tick",
        )
        assert fired["lastFireTime"] == minute.strftime("%Y-%m-%dT%H:%M:%SZ")
        await eventually(
            lambda: any(e.get("reason") == "ScheduledJobEnqueued" for e in kube.events("cron")),
            what="ScheduledJobEnqueued event",
        )
        clock.now = minute + timedelta(seconds=30)
        following = minute + timedelta(minutes=1)
        await eventually(
            lambda: (
                (schedule_status(kube, "cron") or {}).get("nextFireTime")
                == following.strftime("%Y-%m-%dT%H:%M:%SZ")
            ),
            what="next fire time",
        )
        entries = await redis_client.xrange("cron:work")
        assert len(entries) == 1
        assert entries[0][1]["id"] == fired["lastJobId"]

        # And the next minute gives the next job
        clock.now = following + timedelta(seconds=1)
        await eventually(lambda: _length_is(redis_client, 2), what="second tick's job")
        clock.now = following + timedelta(seconds=20)
        await eventually(
            lambda: (
                (schedule_status(kube, "cron") or {}).get("lastFireTime")
                == following.strftime("%Y-%m-%dT%H:%M:%SZ")
            ),
            what="status after the second tick",
        )
        assert await redis_client.xlen("cron:work") == 2


async def _length_is(redis: Redis, expected: int) -> bool:
    return int(await redis.xlen("cron:work")) == expected
