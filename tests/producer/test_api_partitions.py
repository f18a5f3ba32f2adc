"""The HTTP API of a partitioned queue: a partition_key keeps its jobs in one partition,
in order; status and stats find every job and list each partition."""

from __future__ import annotations

import pytest
from producer.http_api import Api, StartApi
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.partitions import partition_of
from jobqueue.core.settings import QueueSettings

QUEUE = QueueSettings(status_ttl_s=3600, partitions=3)
PARTS = QUEUE.partition_keys


@pytest.fixture
async def api(start_api: StartApi) -> Api:
    return await start_api(queue=QUEUE)


async def test_jobs_of_one_partition_key_go_to_one_partition_in_order_and_are_found(
    api: Api, redis_client: AsyncRedis
) -> None:
    jobs = [{"type": "noop", "payload": {"n": n}, "partition_key": "cart-9"} for n in range(4)]

    status, body = await api.call("POST", "/jobs/batch", json={"jobs": jobs})
    single_status, single = await api.call("POST", "/jobs", json={"type": "noop", "payload": {}})

    assert (status, single_status) == (202, 202)
    home = PARTS[partition_of("cart-9", 3)].stream
    ids = [accepted["streamEntryId"] for accepted in body["jobs"]]
    assert [entry_id for entry_id, _ in await redis_client.xrange(home)][: len(ids)] == ids
    for accepted in [*body["jobs"], single]:
        found, record = await api.call("GET", f"/jobs/{accepted['jobId']}")
        assert (found, record["state"]) == (200, "queued")
    _, stats = await api.call("GET", "/jobs/stats")
    assert stats["length"] == 5
    assert [p["stream"] for p in stats["partitions"]] == [k.stream for k in PARTS]
    assert sum(p["length"] for p in stats["partitions"]) == 5
