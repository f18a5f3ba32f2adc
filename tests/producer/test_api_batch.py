"""POST /jobs/batch: all-or-nothing validation, per-job results, one Redis round trip."""

from __future__ import annotations

from producer.http_api import Api, StartApi
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core import scripts
from jobqueue.core.keys import QueueKeys

KEYS = QueueKeys()


def email(n: int) -> dict[str, object]:
    return {"type": "email", "payload": {"to": f"u{n}@example.com", "template": "welcome"}}


async def _script_calls(redis_client: AsyncRedis) -> int:
    # The enqueue script loaded first: a first call on a fresh server is refused
    # (NOSCRIPT) and sent again, and the refusal counts as a call.
    await redis_client.script_load(scripts.ENQUEUE)
    stats = await redis_client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


async def test_a_batch_is_enqueued_in_order_with_one_result_per_job(
    api: Api, redis_client: AsyncRedis
) -> None:
    jobs = [email(n) for n in range(5)] + [{**email(5), "delay_seconds": 30}]
    before = await _script_calls(redis_client)

    status, body = await api.call("POST", "/jobs/batch", json={"jobs": jobs})

    assert status == 202
    assert [j["state"] for j in body["jobs"]] == ["queued"] * 5 + ["delayed"]
    entries = await redis_client.xrange(KEYS.stream)
    assert [e[0] for e in entries] == [j["streamEntryId"] for j in body["jobs"][:5]]
    assert [f["id"] for _, f in entries] == [j["jobId"] for j in body["jobs"][:5]]
    assert await _script_calls(redis_client) - before == 1


async def test_one_bad_job_rejects_the_whole_batch_naming_it(
    api: Api, redis_client: AsyncRedis
) -> None:
    jobs = [email(0), {"type": "email", "payload": {"to": "x@example.com"}}, email(2)]

    status, body = await api.call("POST", "/jobs/batch", json={"jobs": jobs})

    assert status == 422
    assert [i["field"] for i in body["issues"]] == ["jobs.1.payload"]
    assert await redis_client.xlen(KEYS.stream) == 0


async def test_a_batch_over_the_configured_limit_is_422(start_api: StartApi) -> None:
    api = await start_api(max_batch_jobs=3)

    status, body = await api.call(
        "POST", "/jobs/batch", json={"jobs": [email(n) for n in range(4)]}
    )

    assert status == 422
    assert body["issues"][0]["field"] == "jobs"


async def test_an_empty_batch_and_a_batch_idempotency_header_are_422(api: Api) -> None:
    empty, _ = await api.call("POST", "/jobs/batch", json={"jobs": []})
    header, body = await api.call(
        "POST", "/jobs/batch", json={"jobs": [email(0)]}, headers={"Idempotency-Key": "k"}
    )

    assert (empty, header) == (422, 422)
    assert body["issues"][0]["field"] == "Idempotency-Key"


async def test_repeats_inside_a_batch_are_enqueued_once(api: Api, redis_client: AsyncRedis) -> None:
    jobs = [{**email(n), "idempotency_key": "same"} for n in range(3)]

    status, body = await api.call("POST", "/jobs/batch", json={"jobs": jobs})

    assert status == 202
    assert len({j["jobId"] for j in body["jobs"]}) == 1
    assert [j["duplicate"] for j in body["jobs"]] == [False, True, True]
    assert await redis_client.xlen(KEYS.stream) == 1
