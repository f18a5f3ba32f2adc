"""A partitioned queue on one Redis, through the client: jobs spread over the
partitions, a partition key keeps its jobs together and in order, idempotency keys and
caller ids still dedupe, and every lookup by id finds the job wherever it went."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.client import AmbiguousDeadLetter, AsyncClient, NewJob
from jobqueue.core.errors import ConfigError
from jobqueue.core.partitions import lookup_order, parse_partition_list, partition_of
from jobqueue.core.settings import QueueSettings
from jobqueue.core.wire import dead_letter_fields, decode

SETTINGS = QueueSettings(partitions=4, status_ttl_s=3600)
PARTS = SETTINGS.partition_keys


@pytest.fixture
async def client(redis_client: AsyncRedis) -> AsyncClient:
    return AsyncClient(redis_client, SETTINGS)


async def _where(redis: AsyncRedis) -> dict[str, int]:
    """Job id -> the partition whose stream holds it."""
    found = {}
    for index, keys in enumerate(PARTS):
        for entry_id, fields in await redis.xrange(keys.stream):
            found[decode(entry_id, fields).id] = index
    return found


async def test_jobs_spread_over_every_partition_and_each_is_found_by_id(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    results = await client.enqueue_many([NewJob("t", {"n": n}) for n in range(80)])

    where = await _where(redis_client)
    assert set(where) == {r.job_id for r in results}  # each once, none lost
    assert set(where.values()) == {0, 1, 2, 3}
    for result in results[:10]:
        assert where[result.job_id] == partition_of(result.job_id, 4)  # its home
        info = await client.get(result.job_id)
        assert info is not None
        assert info.entry_id == result.entry_id
    stats = await client.stats()
    per_partition = await client.partition_stats()
    assert stats.length == stats.lag == 80 == sum(s.length for s in per_partition)
    assert [s.stream for s in per_partition] == [k.stream for k in PARTS]


async def test_a_partition_key_keeps_its_jobs_in_one_partition_in_enqueue_order(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    for n in range(12):
        await client.enqueue("t", {"n": n}, partition_key="customer-7")
    await client.enqueue_many([NewJob("t", {"n": n}, partition_key="customer-7") for n in (12, 13)])

    home = PARTS[partition_of("customer-7", 4)]
    entries = await redis_client.xrange(home.stream)
    assert [decode(e, f).payload["n"] for e, f in entries] == list(range(14))
    assert sum([await redis_client.xlen(k.stream) for k in PARTS]) == 14


async def test_repeats_of_an_idempotency_key_or_a_caller_id_meet_the_first_job(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    first = await client.enqueue("t", {}, idempotency_key="order-1")
    again = [await client.enqueue("t", {}, idempotency_key="order-1") for _ in range(5)]
    mine = await client.enqueue("t", {}, job_id="my-own-id")
    mine_again = await client.enqueue("t", {}, job_id="my-own-id")

    assert {r.job_id for r in again} == {first.job_id}
    assert all(r.duplicate and r.entry_id == first.entry_id for r in again)
    assert mine_again.duplicate
    assert mine_again.entry_id == mine.entry_id
    assert len(await _where(redis_client)) == 2


async def test_cancel_and_wait_find_a_job_outside_its_home_partition(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    # A partition key that does not hash where the id does: the lookup asks the others.
    job = await client.enqueue("t", {}, partition_key="k", delay_s=60)
    home = lookup_order(job.job_id, 4)[0]
    if home == partition_of("k", 4):
        job = await client.enqueue("t", {}, partition_key="k2", delay_s=60)
    outcome = await client.cancel(job.job_id)

    assert outcome.state == "cancelled"
    info = await client.wait(job.job_id, timeout=0.1)
    assert info is not None
    assert info.state == "cancelled"
    assert await client.get("no-such-job") is None


async def test_dead_letters_of_every_partition_page_in_entry_order_and_replay_home(
    client: AsyncClient, redis_client: AsyncRedis
) -> None:
    # Each partition numbers its own dead letters: one millisecond's ids repeat.
    placed = [(PARTS[2], "1000-0"), (PARTS[0], "1000-0"), (PARTS[3], "2000-0")]
    placed.append((PARTS[0], "3000-0"))
    for n, (keys, entry_id) in enumerate(placed):
        fields = {"id": f"job-{n}", "type": "t", "payload": "{}", "priority": "5"}
        fields |= {"enqueued_at": "2026-01-01T00:00:00Z", "attempts": "3"}
        dead = dead_letter_fields(keys.stream, "1-0", fields, "failed")
        await redis_client.xadd(keys.dead, dead, id=entry_id)

    pages, after = [], None
    while True:
        page = await client.dead_letters(after=after, limit=1)
        pages.append([(d.entry_id, d.job_id) for d in page.items])
        if (after := page.next_after) is None:
            break
    # A page never splits equal ids (the next starts after the last one).
    first, *rest = pages
    assert first == [("1000-0", "job-1"), ("1000-0", "job-0")]
    assert rest == [[("2000-0", "job-2")], [("3000-0", "job-3")]]
    assert (await client.stats()).dead_letters == 4

    with pytest.raises(AmbiguousDeadLetter):
        await client.replay("1000-0")
    replayed = await client.replay("1000-0", job_id="job-0")  # it died in partition 2
    assert replayed is not None
    assert replayed.job_id == "job-0"
    assert await redis_client.xlen(PARTS[2].stream) == 1
    assert await redis_client.xlen(PARTS[2].dead) == 0
    assert await client.delete_dead("1000-0")  # no longer ambiguous
    assert (await client.stats()).dead_letters == 2


def test_partition_lists_and_counts_are_checked() -> None:
    assert parse_partition_list("0, 2,5-7") == (0, 2, 5, 6, 7)
    for bad in ("", "x", "3-1", "-1"):
        with pytest.raises(ValueError, match=r"partition|invalid literal"):
            parse_partition_list(bad)
    with pytest.raises(ConfigError):
        QueueSettings(partitions=0)
    with pytest.raises(ConfigError, match="leave it unset"):
        QueueSettings(redis_url="redis+cluster://h:1", partitions=2, dead_stream="jobs:dead")
