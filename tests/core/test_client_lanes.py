"""The client of a queue with priority lanes: each job goes to its lane's stream in one
script call, and status, cancel, replay and stats find it there."""

from __future__ import annotations

import re

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core import scripts
from jobqueue.core.client import (
    AsyncClient,
    Client,
    Enqueued,
    InvalidNewJob,
    NewJob,
    PartlyEnqueued,
)
from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import parse_lanes
from jobqueue.core.partitions import partition_of
from jobqueue.core.settings import QueueSettings
from jobqueue.core.wire import dead_letter_fields

KEYS = QueueKeys()
LANES = parse_lanes("high:8-10,normal:4-7,low:1-3")
HIGH, LOW = KEYS.lane("high"), KEYS.lane("low")
SETTINGS = QueueSettings(status_ttl_s=3600, lanes=LANES)


@pytest.fixture
async def client(redis_client: AsyncRedis) -> AsyncClient:
    return AsyncClient(redis_client, SETTINGS)


async def entry_ids(redis: AsyncRedis, stream: str) -> list[str]:
    return [entry_id for entry_id, _ in await redis.xrange(stream)]


async def script_calls(redis: AsyncRedis) -> int:
    """Script calls so far, the enqueue script loaded first: a first call on a fresh
    server is refused (NOSCRIPT) and sent again, and the refusal counts as a call."""
    await redis.script_load(scripts.ENQUEUE)
    stats = await redis.info("commandstats")
    calls = [stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("eval", "evalsha")]
    return sum(int(n) for n in calls)


async def test_each_priority_lands_in_its_lane_the_default_lane_in_the_queue_stream(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    high = await client.enqueue("email", {}, priority=9)
    normal = await client.enqueue("email", {}, priority=5)
    low = await client.enqueue("email", {}, priority=1)

    assert await entry_ids(redis_client, HIGH) == [high.entry_id]
    assert await entry_ids(redis_client, KEYS.stream) == [normal.entry_id]
    assert await entry_ids(redis_client, LOW) == [low.entry_id]
    # A job outside the queue's own stream names its lane beside its entry id.
    assert await redis_client.hgetall(KEYS.queued) == {
        high.job_id: f"{high.entry_id} high",
        normal.job_id: normal.entry_id,
        low.job_id: f"{low.entry_id} low",
    }


async def test_a_mixed_batch_is_one_script_call_and_each_job_keeps_its_lane(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    jobs = [NewJob("email", {"n": n}, priority=p) for n, p in enumerate([10, 1, 5, 8, 3, 7])]
    before = await script_calls(redis_client)

    results = await client.enqueue_many(jobs)

    assert await script_calls(redis_client) == before + 1
    ids = [r.entry_id for r in results]
    assert await entry_ids(redis_client, HIGH) == [ids[0], ids[3]]
    assert await entry_ids(redis_client, KEYS.stream) == [ids[2], ids[5]]
    assert await entry_ids(redis_client, LOW) == [ids[1], ids[4]]


async def test_a_delayed_job_waits_in_the_shared_delayed_set_whatever_its_lane(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    result = await client.enqueue("email", {}, priority=9, delay_s=60)

    assert result.state == "delayed"
    assert await redis_client.zscore(KEYS.delayed, result.job_id) is not None
    assert await redis_client.exists(HIGH, KEYS.stream) == 0


async def test_the_status_of_a_lane_job_is_read_from_its_lane_stream(
    client: AsyncClient,
) -> None:
    result = await client.enqueue("email", {}, priority=2)

    info = await client.get(result.job_id)

    assert info is not None
    assert (info.state, info.type, info.entry_id, info.lane) == (
        "queued",
        "email",
        result.entry_id,
        "low",
    )


async def test_cancel_deletes_a_queued_job_from_its_lane_only(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    result = await client.enqueue("email", {}, priority=9)
    assert result.entry_id is not None
    # Entry ids are unique per stream only: another job with the same id in the queue's
    # own stream must survive the cancel.
    await redis_client.xadd(KEYS.stream, {"type": "other", "payload": "{}"}, id=result.entry_id)

    outcome = await client.cancel(result.job_id)

    assert (outcome.answer, outcome.state) == ("cancelled", "cancelled")
    assert await redis_client.xlen(HIGH) == 0
    assert await entry_ids(redis_client, KEYS.stream) == [result.entry_id]
    info = await client.get(result.job_id)
    assert info is not None
    assert info.state == "cancelled"


async def test_cancel_asks_a_running_lane_job_to_stop(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    result = await client.enqueue("email", {}, priority=1)
    await redis_client.xgroup_create(LOW, KEYS.group, id="0")
    await redis_client.xreadgroup(KEYS.group, "w1", {LOW: ">"})
    # What the worker writes when the job starts: its entry id, no lane.
    await redis_client.hset(
        KEYS.status(result.job_id), mapping={"state": "running", "entry_id": result.entry_id}
    )

    outcome = await client.cancel(result.job_id)

    assert (outcome.answer, outcome.state) == ("cancel_requested", "running")
    assert await redis_client.hget(KEYS.status(result.job_id), "cancel_requested") == "1"
    assert await redis_client.xlen(LOW) == 1


async def dead_letter(redis: AsyncRedis, source: str, priority: str) -> tuple[str, str]:
    fields = {"id": "job-1", "type": "email", "payload": "{}", "priority": priority}
    dead = dead_letter_fields(source, "1-1", fields, "error")
    return "job-1", await redis.xadd(KEYS.dead, dead)


async def test_replay_returns_a_dead_letter_to_the_lane_it_failed_in(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    # Its priority says low; the stream it failed in says high, and that wins.
    job_id, dead_id = await dead_letter(redis_client, HIGH, "1")

    replayed = await client.replay(dead_id)

    assert replayed is not None
    assert await entry_ids(redis_client, HIGH) == [replayed.entry_id]
    info = await client.get(job_id)
    assert info is not None
    assert (info.state, info.entry_id, info.lane) == ("queued", replayed.entry_id, "high")
    assert (await client.cancel(job_id)).answer == "cancelled"
    assert await redis_client.xlen(HIGH) == 0


async def test_replay_of_a_letter_from_no_current_lane_goes_by_its_priority(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    _, dead_id = await dead_letter(redis_client, KEYS.lane("gone"), "2")

    replayed = await client.replay(dead_id)

    assert replayed is not None
    assert await entry_ids(redis_client, LOW) == [replayed.entry_id]


async def test_stats_sum_every_lane_and_show_each(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    await client.enqueue_many([NewJob("email", {}, priority=p) for p in (9, 9, 9, 5, 1)])
    for stream in (HIGH, KEYS.stream, LOW):
        await redis_client.xgroup_create(stream, KEYS.group, id="0")
    await redis_client.xreadgroup(KEYS.group, "w1", {HIGH: ">"}, count=2)

    sample = await client.stats()

    assert (sample.length, sample.lag, sample.pending, sample.backlog) == (5, 3, 2, 5)
    lanes = {lane.name: (lane.stream, lane.lag, lane.pending) for lane in sample.lanes}
    assert lanes == {"high": (HIGH, 1, 2), "normal": (KEYS.stream, 1, 0), "low": (LOW, 1, 0)}
    assert [lane["name"] for lane in sample.as_dict()["lanes"]] == ["high", "normal", "low"]


def test_the_sync_client_routes_by_lane_too(redis_url: str, sync_redis: redis.Redis) -> None:
    with Client(QueueSettings(redis_url=redis_url, lanes=LANES)) as client:
        high = client.enqueue("email", {}, priority=10)
        [low] = client.enqueue_many([NewJob("email", {}, priority=3)])

    assert [entry_id for entry_id, _ in sync_redis.xrange(HIGH)] == [high.entry_id]
    assert [entry_id for entry_id, _ in sync_redis.xrange(LOW)] == [low.entry_id]


async def test_each_partition_has_its_own_lanes(redis_client: AsyncRedis) -> None:
    settings = QueueSettings(status_ttl_s=3600, lanes=LANES, partitions=2)
    client = AsyncClient(redis_client, settings)
    [first, second] = settings.partition_keys
    # Partition keys chosen so that the jobs go one to each partition.
    keys = {partition_of(f"k{n}", 2): f"k{n}" for n in range(20)}

    high = await client.enqueue("email", {}, priority=9, partition_key=keys[1])
    low = await client.enqueue("email", {}, priority=1, partition_key=keys[0])

    assert await entry_ids(redis_client, second.lane("high")) == [high.entry_id]
    assert await entry_ids(redis_client, first.lane("low")) == [low.entry_id]
    info = await client.get(high.job_id)
    assert info is not None
    assert (info.state, info.lane) == ("queued", "high")
    assert (await client.cancel(high.job_id)).answer == "cancelled"
    sample = await client.stats()
    assert [(lane.name, lane.lag) for lane in sample.lanes] == [
        ("high", 0),
        ("normal", 0),
        ("low", 1),
    ]


NOT_PRIORITIES = [9.0, 2.0, 9.5, "9", None, True, 0, 11]


@pytest.mark.parametrize("priority", NOT_PRIORITIES, ids=repr)
async def test_a_priority_that_is_not_an_int_1_to_10_is_refused_and_nothing_is_written(
    redis_client: AsyncRedis, priority: object
) -> None:
    # 9.0 used to pass, land in the default lane's stream as "9.0" and be dead-lettered
    # by the worker (not an integer); it is a job of a partitioned queue with lanes here
    queue = QueueSettings(status_ttl_s=3600, lanes=LANES, partitions=3)
    client = AsyncClient(redis_client, queue)
    good = NewJob("noop", {}, priority=9, partition_key="k")
    bad = NewJob("noop", {}, priority=priority, partition_key="k")  # type: ignore[arg-type]

    with pytest.raises(InvalidNewJob, match=r"'priority' must be an integer 1\.\.10"):
        await client.enqueue_many([good, bad])
    [accepted, refused] = await client.enqueue_each([good, bad])

    assert isinstance(refused, InvalidNewJob)
    assert isinstance(accepted, Enqueued)
    home = queue.partition_keys[partition_of("k", 3)]
    streams = {
        s: await redis_client.xlen(s) for k in queue.partition_keys for s in LANES.streams(k)
    }
    assert {s: n for s, n in streams.items() if n} == {LANES.stream_for(home, 9): 1}


@pytest.mark.parametrize("key", [7, b"k", ["k"]], ids=repr)
async def test_a_partition_key_that_is_not_a_string_is_refused_by_name(
    client: AsyncClient, key: object
) -> None:
    with pytest.raises(InvalidNewJob, match="'partition_key' must be a string"):
        await client.enqueue_many([NewJob("noop", {}, partition_key=key)])  # type: ignore[arg-type]


async def test_a_batch_whose_call_fails_in_one_partition_names_the_jobs_written_in_others(
    redis_client: AsyncRedis,
) -> None:
    # given a partitioned queue with lanes where partition 1's high lane stream is a
    # foreign key of another type (its script call fails; EXEC still runs the others)
    queue = QueueSettings(status_ttl_s=3600, lanes=LANES, partitions=3)
    client = AsyncClient(redis_client, queue)
    broken = queue.partition_keys[1]
    await redis_client.set(LANES.stream(broken, LANES.lanes[0]), "foreign")
    keys = {p: next(f"k{n}" for n in range(100) if partition_of(f"k{n}", 3) == p) for p in range(3)}
    jobs = [
        NewJob("noop", {}, priority=9, partition_key=keys[p], job_id=f"job-{p}") for p in (0, 1, 2)
    ]
    # when the batch is enqueued
    with pytest.raises(PartlyEnqueued) as caught:
        await client.enqueue_many(jobs)
    # then the error names the jobs of partitions 0 and 2, which are queued, and not
    # the one of partition 1
    written = set(caught.value.enqueued)
    assert written == {"job-0", "job-2"}
    for job_id in written:
        info = await client.get(job_id)
        assert info is not None
        assert info.state == "queued"


async def test_a_job_with_too_many_extra_fields_is_refused_alone_and_nothing_else_is_harmed(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    # Given a batch with a job of 5,000 extra fields (more than one Lua unpack takes) between
    # two good ones,
    big = NewJob("noop", {}, extra={f"f{n}": "x" for n in range(5000)})
    batch = [NewJob("noop", {}), big, NewJob("noop", {})]
    # then all-or-nothing refuses the batch before writing anything, naming the job,
    with pytest.raises(InvalidNewJob, match="'extra' must hold at most 1000 fields"):
        await client.enqueue_many(batch)
    assert sum([await redis_client.xlen(s) for s in LANES.streams(KEYS)]) == 0
    # and each-on-its-own enqueues the good ones, once each, not as duplicates.
    first, refused, last = await client.enqueue_each(batch)
    assert isinstance(refused, InvalidNewJob)
    assert isinstance(first, Enqueued)
    assert isinstance(last, Enqueued)
    assert (first.duplicate, last.duplicate) == (False, False)


@pytest.mark.parametrize("which", ["queued", "delayed", "delayed_jobs", "stream"])
async def test_a_foreign_queue_key_fails_the_call_before_anything_is_written(
    redis_client: AsyncRedis, which: str
) -> None:
    # Given one of the queue's keys held by another application as a plain string,
    client = AsyncClient(redis_client, QueueSettings(status_ttl_s=3600))
    key = getattr(KEYS, which)
    await redis_client.set(key, "foreign")
    # when a batch of a queued and a delayed job is enqueued,
    batch = [NewJob("noop", {}), NewJob("noop", {}, delay_s=60)]
    with pytest.raises(redis.ResponseError, match=f"WRONGTYPE {re.escape(key)} holds another"):
        await client.enqueue_many(batch)
    # then nothing was written (all or nothing) and the foreign key is as it was
    assert await redis_client.get(key) == "foreign"
    for other in ("queued", "delayed", "delayed_jobs", "stream"):
        if other != which:
            assert not await redis_client.exists(getattr(KEYS, other)), other
