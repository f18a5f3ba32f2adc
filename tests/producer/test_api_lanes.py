"""The HTTP API of a queue with priority lanes: POST /jobs and /jobs/batch route each job
to its lane's stream; status, cancel, stats and metrics know the lanes."""

from __future__ import annotations

import pytest
from producer.http_api import Api, StartApi
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import parse_lanes
from jobqueue.core.settings import QueueSettings

KEYS = QueueKeys()
HIGH, LOW = KEYS.lane("high"), KEYS.lane("low")


@pytest.fixture
async def api(start_api: StartApi) -> Api:
    lanes = parse_lanes("high:8-10,normal:4-7,low:1-3")
    return await start_api(queue=QueueSettings(status_ttl_s=3600, lanes=lanes))


def job(priority: int) -> dict[str, object]:
    return {"type": "noop", "payload": {}, "priority": priority}


async def entry_ids(redis: AsyncRedis, stream: str) -> list[str]:
    return [entry_id for entry_id, _ in await redis.xrange(stream)]


async def test_post_jobs_puts_each_job_in_the_stream_of_its_priority_lane(
    api: Api, redis_client: AsyncRedis
) -> None:
    answers = {p: await api.call("POST", "/jobs", json=job(p)) for p in (9, 5, 1)}

    assert {status for status, _ in answers.values()} == {202}
    assert await entry_ids(redis_client, HIGH) == [answers[9][1]["streamEntryId"]]
    assert await entry_ids(redis_client, KEYS.stream) == [answers[5][1]["streamEntryId"]]
    assert await entry_ids(redis_client, LOW) == [answers[1][1]["streamEntryId"]]


async def test_a_batch_of_mixed_priorities_is_split_over_the_lanes(
    api: Api, redis_client: AsyncRedis
) -> None:
    jobs = [job(p) for p in (1, 10, 6, 8, 2)]

    status, body = await api.call("POST", "/jobs/batch", json={"jobs": jobs})

    assert status == 202
    ids = [accepted["streamEntryId"] for accepted in body["jobs"]]
    assert await entry_ids(redis_client, HIGH) == [ids[1], ids[3]]
    assert await entry_ids(redis_client, KEYS.stream) == [ids[2]]
    assert await entry_ids(redis_client, LOW) == [ids[0], ids[4]]


async def test_status_and_cancel_of_a_job_in_a_lane(api: Api, redis_client: AsyncRedis) -> None:
    _, accepted = await api.call("POST", "/jobs", json=job(9))
    job_id = accepted["jobId"]

    status, info = await api.call("GET", f"/jobs/{job_id}")
    assert status == 200
    assert (info["state"], info["lane"], info["streamEntryId"]) == (
        "queued",
        "high",
        accepted["streamEntryId"],
    )

    status, cancelled = await api.call("DELETE", f"/jobs/{job_id}")
    assert (status, cancelled["result"]) == (200, "cancelled")
    assert await redis_client.xlen(HIGH) == 0


async def test_stats_show_the_sum_and_each_lane_and_metrics_carry_the_lane(
    api: Api,
) -> None:
    for p in (9, 9, 4, 1):
        await api.call("POST", "/jobs", json=job(p))

    status, stats = await api.call("GET", "/jobs/stats")

    assert status == 200
    assert (stats["length"], stats["lag"]) == (4, 4)
    assert [(lane["name"], lane["lag"]) for lane in stats["lanes"]] == [
        ("high", 2),
        ("normal", 1),
        ("low", 1),
    ]
    async with api.session.get(api.url("/metrics")) as response:
        metrics = await response.text()
    assert 'jobqueue_jobs_enqueued_total{lane="high",type="noop"} 2.0' in metrics
    assert 'jobqueue_jobs_enqueued_total{lane="low",type="noop"} 1.0' in metrics
