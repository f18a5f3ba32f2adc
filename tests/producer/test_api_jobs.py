"""POST /jobs, GET and DELETE /jobs/{id}, GET /jobs/stats over real HTTP."""

from __future__ import annotations

import time

import orjson
from producer.http_api import README_EXAMPLE, Api, StartApi
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.wire import decode

KEYS = QueueKeys()
EMAIL = {"type": "email", "payload": {"to": "user@example.com", "template": "welcome"}}


async def test_the_readme_curl_example_is_accepted_and_enqueued(
    api: Api, redis_client: AsyncRedis
) -> None:
    status, body = await api.call(
        "POST", "/jobs", data=README_EXAMPLE, headers={"Content-Type": "application/json"}
    )

    assert status == 202
    assert body["status"] == "accepted"
    [(entry_id, fields)] = await redis_client.xrange(KEYS.stream)
    assert body["streamEntryId"] == entry_id
    job = decode(entry_id, fields)
    assert job.id == body["jobId"]
    assert (job.type, job.priority, job.attempts) == ("email", 5, 0)
    assert job.payload == {"to": "user@example.com", "template": "welcome"}


async def test_an_unknown_body_field_is_rejected_by_name(
    api: Api, redis_client: AsyncRedis
) -> None:
    status, body = await api.call("POST", "/jobs", json={**EMAIL, "priorty": 3})

    assert status == 422
    assert body["error"] == "Invalid job"
    assert [i["field"] for i in body["issues"]] == ["priorty"]
    assert await redis_client.xlen(KEYS.stream) == 0


async def test_every_bad_field_is_named(api: Api) -> None:
    status, body = await api.call(
        "POST", "/jobs", json={"type": "email", "payload": {}, "priority": "5", "delay_seconds": -1}
    )

    assert status == 422
    assert {i["field"] for i in body["issues"]} == {"priority", "delay_seconds"}


async def test_a_payload_that_breaks_its_type_schema_is_stopped_at_the_door(api: Api) -> None:
    status, body = await api.call("POST", "/jobs", json={"type": "email", "payload": {"to": 5}})

    assert status == 422
    messages = {i["field"]: i["message"] for i in body["issues"]}
    assert set(messages) == {"payload", "payload.to"}
    assert "template" in messages["payload"]


async def test_an_unknown_job_type_is_rejected(api: Api) -> None:
    status, body = await api.call("POST", "/jobs", json={"type": "mine", "payload": {}})

    assert status == 422
    assert body["issues"][0]["field"] == "type"
    assert "email" in body["issues"][0]["message"]


async def test_bodies_that_are_not_a_json_job_are_422(api: Api) -> None:
    for raw in (b"", b"{", b"[]", b'{"type":"email","payload":{"n":NaN}}'):
        status, body = await api.call("POST", "/jobs", data=raw)
        assert status == 422, raw
        assert body["error"] == "Invalid job"


async def test_delay_and_run_at_together_are_422(api: Api) -> None:
    job = {**EMAIL, "delay_seconds": 5, "run_at": "2030-01-01T00:00:00Z"}

    status, body = await api.call("POST", "/jobs", json=job)

    assert status == 422
    assert "not both" in body["issues"][0]["message"]


async def test_integers_beyond_64_bits_are_refused_and_64_bit_ones_reach_a_worker_exactly(
    api: Api, redis_client: AsyncRedis
) -> None:
    """A worker decodes JSON with 64-bit integers: a wider one would reach the handler as a
    float, so it is refused with a reason; the widest accepted ones arrive exactly."""
    for wide in (2**64, -(2**63) - 1, 123456789012345678901234567890):
        raw = b'{"type":"noop","payload":{"deep":[{"n":%d}]}}' % wide

        status, body = await api.call("POST", "/jobs", data=raw)

        assert status == 422, wide
        [issue] = body["issues"]
        assert "'payload.deep.0.n'" in issue["message"]
        assert "64 bits" in issue["message"]
    assert await redis_client.xlen(KEYS.stream) == 0

    raw = b'{"type":"noop","payload":{"max":%d,"min":%d}}' % (2**64 - 1, -(2**63))
    status, _ = await api.call("POST", "/jobs", data=raw)

    assert status == 202
    [(entry_id, fields)] = await redis_client.xrange(KEYS.stream)
    assert decode(entry_id, fields).payload == {"max": 2**64 - 1, "min": -(2**63)}


async def test_a_body_over_the_size_limit_is_413(start_api: StartApi) -> None:
    api = await start_api(max_body_bytes=1000)
    job = {"type": "noop", "payload": {"blob": "x" * 2000}}

    status, body = await api.call("POST", "/jobs", json=job)

    assert status == 413
    assert body["error"] == "Request Entity Too Large"


async def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    missing, missing_body = await api.call("GET", "/nope")
    wrong, wrong_body = await api.call("PUT", "/jobs")

    assert (missing, missing_body["error"]) == (404, "Not Found")
    assert (wrong, wrong_body["error"]) == (405, "Method Not Allowed")


async def test_an_idempotent_repeat_enqueues_once(api: Api, redis_client: AsyncRedis) -> None:
    headers = {"Idempotency-Key": "order-7"}
    first_status, first = await api.call("POST", "/jobs", json=EMAIL, headers=headers)
    again_status, again = await api.call("POST", "/jobs", json=EMAIL, headers=headers)
    in_body, by_body = await api.call("POST", "/jobs", json={**EMAIL, "idempotency_key": "order-7"})

    assert (first_status, again_status, in_body) == (202, 202, 202)
    assert again["jobId"] == by_body["jobId"] == first["jobId"]
    assert again["streamEntryId"] == first["streamEntryId"]
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert await redis_client.xlen(KEYS.stream) == 1


async def test_an_idempotency_header_that_contradicts_the_body_is_422(api: Api) -> None:
    job = {**EMAIL, "idempotency_key": "a"}

    status, body = await api.call("POST", "/jobs", json=job, headers={"Idempotency-Key": "b"})

    assert status == 422
    assert body["issues"][0]["field"] == "Idempotency-Key"


async def test_a_delayed_job_waits_in_the_delayed_set(api: Api, redis_client: AsyncRedis) -> None:
    before_ms = time.time() * 1000
    status, body = await api.call("POST", "/jobs", json={**EMAIL, "delay_seconds": 60})

    assert status == 202
    assert (body["state"], body["streamEntryId"]) == ("delayed", None)
    assert await redis_client.xlen(KEYS.stream) == 0
    assert await redis_client.zscore(KEYS.delayed, body["jobId"]) >= before_ms + 60_000
    fields = orjson.loads(await redis_client.hget(KEYS.delayed_jobs, body["jobId"]))
    assert decode("0-1", fields).id == body["jobId"]


async def test_a_job_status_is_readable_and_an_unknown_job_is_404(api: Api) -> None:
    _, accepted = await api.call("POST", "/jobs", json=EMAIL)

    status, job = await api.call("GET", f"/jobs/{accepted['jobId']}")
    unknown, error = await api.call("GET", "/jobs/01UNKNOWN")

    assert status == 200
    assert job["jobId"] == accepted["jobId"]
    assert (job["state"], job["type"], job["attempts"]) == ("queued", "email", 0)
    assert job["streamEntryId"] == accepted["streamEntryId"]
    assert job["enqueuedAt"].endswith("Z")
    assert (unknown, error["error"]) == (404, "Job not found")


async def test_cancel_answers_what_happened(api: Api, redis_client: AsyncRedis) -> None:
    _, queued = await api.call("POST", "/jobs", json=EMAIL)
    _, delivered = await api.call("POST", "/jobs", json=EMAIL)
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id=queued["streamEntryId"])
    await redis_client.xreadgroup(KEYS.group, "pod-a", {KEYS.stream: ">"}, count=1)

    cancelled = await api.call("DELETE", f"/jobs/{queued['jobId']}")
    asked = await api.call("DELETE", f"/jobs/{delivered['jobId']}")
    again = await api.call("DELETE", f"/jobs/{queued['jobId']}")
    unknown = await api.call("DELETE", "/jobs/01UNKNOWN")

    assert cancelled == (
        200,
        {"jobId": queued["jobId"], "result": "cancelled", "state": "cancelled"},
    )
    assert asked[0] == 200
    assert (asked[1]["result"], asked[1]["state"]) == ("cancel_requested", "queued")
    assert (again[0], again[1]["error"]) == (409, "Job not cancellable")
    assert unknown[0] == 404


async def test_stats_carry_the_spec_keys_and_the_counts(api: Api, redis_client: AsyncRedis) -> None:
    await api.call("POST", "/jobs", json=EMAIL)
    await api.call("POST", "/jobs", json={**EMAIL, "delay_seconds": 60})
    await redis_client.xgroup_create(KEYS.stream, KEYS.group, id="0")

    status, stats = await api.call("GET", "/jobs/stats")

    assert status == 200
    assert stats["stream"] == KEYS.stream
    assert (stats["length"], stats["lag"], stats["pending"]) == (1, 1, 0)
    assert (stats["delayed"], stats["deadLetters"]) == (1, 0)
    assert [g["name"] for g in stats["consumerGroups"]] == [KEYS.group]
