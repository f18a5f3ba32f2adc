"""Queue sampling: lag stays right where XINFO's own lag field is NULL or missing."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from jobqueue.core import backlog
from jobqueue.core.backlog import sample_queue
from jobqueue.core.keys import QueueKeys

KEYS = QueueKeys()


async def add_jobs(redis: Redis, count: int) -> list[str]:
    return [await redis.xadd(KEYS.stream, {"type": "noop", "payload": "{}"}) for _ in range(count)]


async def test_missing_stream_is_an_empty_queue(redis_client: Redis) -> None:
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.length, sample.lag, sample.pending, sample.delayed) == (0, 0, 0, 0)


async def test_without_a_group_every_entry_is_lag(redis_client: Redis) -> None:
    await add_jobs(redis_client, 3)
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.lag, sample.lag_source) == (3, "no-group")


async def test_group_lag_and_pending_after_a_read(redis_client: Redis) -> None:
    await add_jobs(redis_client, 5)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    await redis_client.xreadgroup(KEYS.group, "c1", {KEYS.stream: ">"}, count=2)
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.lag, sample.pending, sample.backlog) == (3, 2, 5)


async def test_lag_is_counted_when_redis_reports_null_after_xdel(redis_client: Redis) -> None:
    ids = await add_jobs(redis_client, 6)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    await redis_client.xreadgroup(KEYS.group, "c1", {KEYS.stream: ">"}, count=1)
    await redis_client.xdel(KEYS.stream, ids[3])  # deleted after the group's position
    groups = await redis_client.xinfo_groups(KEYS.stream)
    assert groups[0]["lag"] is None  # Redis gives up here; we must not
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.lag, sample.lag_source) == (4, "counted")


async def test_delayed_and_dead_letters_are_counted(redis_client: Redis) -> None:
    await redis_client.zadd(KEYS.delayed, {"a": 1, "b": 2})
    await redis_client.xadd(KEYS.dead, {"reason": "x"})
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.delayed, sample.dead_letters) == (2, 1)


async def test_stale_lag_after_xtrim_is_corrected_to_the_stream_length(redis_client: Redis) -> None:
    # Given a group that read 2 of 6 entries
    await add_jobs(redis_client, 6)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    await redis_client.xreadgroup(KEYS.group, "c1", {KEYS.stream: ">"}, count=2)
    # When XTRIM removes undelivered entries, Redis keeps reporting the old lag
    await redis_client.xtrim(KEYS.stream, maxlen=1, approximate=False)
    groups = await redis_client.xinfo_groups(KEYS.stream)
    assert groups[0]["lag"] == 4  # stale: only one entry is left
    # Then the sample counts what is really waiting
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.lag, sample.lag_source, sample.pending) == (1, "all-after", 2)


async def test_group_created_at_dollar_sees_new_jobs_as_lag(redis_client: Redis) -> None:
    await add_jobs(redis_client, 4)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="$")
    await add_jobs(redis_client, 2)
    groups = await redis_client.xinfo_groups(KEYS.stream)
    assert groups[0]["lag"] is None  # entries-read unknown: Redis gives no lag
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.lag, sample.lag_source) == (2, "counted")


async def test_group_at_the_end_of_the_stream_has_no_lag_even_with_tombstones(
    redis_client: Redis,
) -> None:
    ids = await add_jobs(redis_client, 5)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    await redis_client.xreadgroup(KEYS.group, "c1", {KEYS.stream: ">"}, count=10)
    await redis_client.xdel(KEYS.stream, ids[4])  # the last delivered entry is gone
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.lag, sample.lag_source, sample.pending) == (0, "caught-up", 5)


async def test_deleting_the_last_delivered_entry_then_adding_counts_only_new_jobs(
    redis_client: Redis,
) -> None:
    ids = await add_jobs(redis_client, 3)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    await redis_client.xreadgroup(KEYS.group, "c1", {KEYS.stream: ">"}, count=10)
    await redis_client.xdel(KEYS.stream, ids[2])
    await add_jobs(redis_client, 2)
    assert (await redis_client.xinfo_groups(KEYS.stream))[0]["lag"] is None
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.lag, sample.lag_source, sample.backlog) == (2, "counted", 5)


async def test_emptied_stream_has_no_lag(redis_client: Redis) -> None:
    ids = await add_jobs(redis_client, 3)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    await redis_client.xdel(KEYS.stream, *ids)
    sample = await sample_queue(redis_client, KEYS)
    assert (sample.length, sample.lag, sample.lag_source) == (0, 0, "empty")


async def test_lag_past_the_scan_cap_is_estimated_within_the_stream_length(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a NULL lag (a tombstone after the group's position) and a scan cap of 3
    monkeypatch.setattr(backlog, "COUNT_CAP", 3)
    ids = await add_jobs(redis_client, 8)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    await redis_client.xreadgroup(KEYS.group, "c1", {KEYS.stream: ">"}, count=1)
    await redis_client.xdel(KEYS.stream, ids[5])
    # When sampled, the estimate is entries-added - entries-read, never above the length
    sample = await sample_queue(redis_client, KEYS)
    assert sample.lag_source == "estimated"
    assert sample.lag == 7  # 8 added - 1 read; the true 6 is within one deleted entry
    assert sample.lag <= sample.length


async def test_the_oldest_waiting_entry_is_the_first_the_group_has_not_delivered(
    redis_client: Redis,
) -> None:
    # Given entries added 90, 60 and 30 s ago (ids carry the time Redis added them)
    seconds, micros = await redis_client.time()
    now_s = seconds + micros / 1e6
    ids = []
    for age_s in (90, 60, 30):
        entry_id = f"{int((now_s - age_s) * 1000)}-0"
        ids.append(await redis_client.xadd(KEYS.stream, {"type": "noop"}, id=entry_id))
    # Without a group, every entry waits: the first is the oldest
    no_group = await sample_queue(redis_client, KEYS)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    await redis_client.xreadgroup(KEYS.group, "c1", {KEYS.stream: ">"}, count=1)
    # When the group has delivered the first one, the second is the oldest waiting
    one_read = await sample_queue(redis_client, KEYS)
    await redis_client.xreadgroup(KEYS.group, "c1", {KEYS.stream: ">"}, count=2)
    all_read = await sample_queue(redis_client, KEYS)

    assert no_group.oldest_waiting_id == ids[0]
    assert one_read.oldest_waiting_id == ids[1]
    assert 59 <= one_read.oldest_waiting_age_s(now_s) <= 61
    assert all_read.oldest_waiting_id is None  # pending, not waiting
    assert all_read.oldest_waiting_age_s(now_s) == 0.0
