"""GET /dead (paged), POST /dead/{id}/replay, DELETE /dead/{id}."""

from __future__ import annotations

from producer.http_api import Api
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import Job, dead_letter_fields, decode

KEYS = QueueKeys()


async def _dead(redis_client: AsyncRedis, n: int) -> list[str]:
    ids = []
    for i in range(n):
        job = Job(type="webhook", payload={"url": f"https://example.com/{i}"}, attempts=2)
        fields = dead_letter_fields(KEYS.stream, f"1-{i}", job.fields(), "HTTP 500", attempts=3)
        ids.append(await redis_client.xadd(KEYS.dead, fields))
    return ids


async def test_dead_letters_are_listed_oldest_first_page_by_page(
    api: Api, redis_client: AsyncRedis
) -> None:
    ids = await _dead(redis_client, 3)

    status, first = await api.call("GET", "/dead?limit=2")
    _, second = await api.call("GET", f"/dead?limit=2&after={first['next']}")

    assert status == 200
    assert [d["id"] for d in first["items"]] == ids[:2]
    assert [d["id"] for d in second["items"]] == ids[2:]
    assert second["next"] is None
    item = first["items"][0]
    assert (item["type"], item["reason"], item["attempts"]) == ("webhook", "HTTP 500", "3")


async def test_bad_paging_parameters_are_400(api: Api) -> None:
    for query in ("limit=0", "limit=x", "limit=501", "after=nope"):
        status, body = await api.call("GET", f"/dead?{query}")
        assert (status, body["error"]) == (400, "Invalid query"), query


async def test_replay_puts_the_job_back_with_attempts_reset_once(
    api: Api, redis_client: AsyncRedis
) -> None:
    [dead_id] = await _dead(redis_client, 1)
    _, page = await api.call("GET", "/dead")
    job_id = page["items"][0]["jobId"]

    status, replayed = await api.call("POST", f"/dead/{dead_id}/replay")
    again, _ = await api.call("POST", f"/dead/{dead_id}/replay")

    assert status == 200
    assert replayed["jobId"] == job_id
    assert again == 404
    [(entry_id, fields)] = await redis_client.xrange(KEYS.stream)
    assert entry_id == replayed["streamEntryId"]
    job = decode(entry_id, fields)
    assert (job.id, job.attempts, job.payload) == (job_id, 0, {"url": "https://example.com/0"})
    assert await redis_client.xlen(KEYS.dead) == 0
    _, info = await api.call("GET", f"/jobs/{job_id}")
    assert (info["state"], info["attempts"]) == ("queued", 0)


async def test_delete_removes_one_dead_letter(api: Api, redis_client: AsyncRedis) -> None:
    ids = await _dead(redis_client, 2)

    status, body = await api.call("DELETE", f"/dead/{ids[0]}")
    again, _ = await api.call("DELETE", f"/dead/{ids[0]}")

    assert (status, body) == (200, {"status": "deleted", "id": ids[0]})
    assert again == 404
    assert [e[0] for e in await redis_client.xrange(KEYS.dead)] == ids[1:]
