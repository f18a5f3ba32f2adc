"""``/jobs``: enqueue one or many jobs, read a job's status, cancel it, queue stats."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError
from redis.exceptions import InvalidResponse

from jobqueue.core.client import InvalidNewJob, NewJob
from jobqueue.core.client_types import JOB_ID_PATTERN
from jobqueue.core.partitions import partition_rows
from jobqueue.core.wire import new_job_id, shown
from jobqueue.producer.context import BATCHER, CLIENT, JOB_TYPES, METRICS, SETTINGS
from jobqueue.producer.deadline import DEADLINE
from jobqueue.producer.errors import invalid_job, json_error
from jobqueue.producer.long_poll import requested_wait_s
from jobqueue.producer.metrics import lane_label
from jobqueue.producer.models import (
    BatchIn,
    CancelOut,
    JobIn,
    JobStatusOut,
    StatsOut,
)
from jobqueue.producer.outcomes import ENQUEUE_FAILURES, enqueue_failed

routes = web.RouteTableDef()
IDEMPOTENCY_HEADER = "Idempotency-Key"
JSON_TYPE = "application/json"


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=model.model_dump_json(), content_type="application/json"
    )


def _issues(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    issues = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        issues.append((prefix + path if path else prefix.rstrip(".") or "body", error["msg"]))
    return issues


def _is_json(content_type: str) -> bool:
    return content_type == JSON_TYPE or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def _json_body(request: web.Request) -> bytes:
    """The body, checked to be strict JSON first: orjson refuses NaN and Infinity, which
    pydantic would let through into a payload. Only a JSON Content-Type is read: a form
    or text/plain body is what a web page can send cross-site without asking (CORS)."""
    if not _is_json(request.content_type):
        raise web.HTTPUnsupportedMediaType(
            text=f"send the body as {JSON_TYPE} (got {request.content_type})"
        )
    body = await request.read()
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _Invalid([("body", f"invalid JSON: {exc}")]) from None
    return body


class _Invalid(Exception):
    def __init__(self, issues: list[tuple[str, str]]) -> None:
        self.issues = issues


class _Failed(Exception):
    """An enqueue that Redis's trouble stopped; ``response`` says what became of it."""

    def __init__(self, response: web.Response) -> None:
        self.response = response


def _new_job(job: JobIn, idempotency_key: str | None) -> NewJob:
    return NewJob(
        type=job.type,
        payload=job.payload,
        priority=job.priority,
        delay_s=job.delay_seconds,
        run_at=job.run_at,
        idempotency_key=idempotency_key or job.idempotency_key,
        partition_key=job.partition_key,
        # Chosen here, so an answer that is not a 202 can still name the job.
        job_id=job.job_id or new_job_id(),
    )


def _header_key(request: web.Request, job: JobIn) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 0 < len(key) <= 200:
        raise _Invalid([(IDEMPOTENCY_HEADER, "must be 1..200 characters")])
    try:
        key.encode()
    except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as lone surrogates
        raise _Invalid([(IDEMPOTENCY_HEADER, "must be UTF-8 text")]) from None
    if job.idempotency_key is not None and job.idempotency_key != key:
        raise _Invalid([(IDEMPOTENCY_HEADER, "differs from the body's idempotency_key")])
    return key


async def _enqueue(
    request: web.Request, jobs: list[NewJob], *, batch: bool
) -> list[dict[str, Any]]:
    """Enqueue and answer each job in the shape of `Accepted` (built as plain dicts: a big
    batch would spend more time building models than Redis spends enqueueing). A single
    job shares its round trip with those of concurrent requests (`EnqueueBatcher`)."""
    deadline = request[DEADLINE]
    try:
        if batch:
            async with asyncio.timeout_at(deadline):
                results = await request.app[CLIENT].enqueue_many(
                    jobs, not_after_ms=_epoch_ms(deadline)
                )
        else:
            results = [await request.app[BATCHER].enqueue(job, deadline) for job in jobs]
    except InvalidNewJob as exc:
        where = f"jobs.{exc.index}." if batch else ""
        raise _Invalid([(f"{where}payload", exc.reason)]) from None
    except InvalidResponse:
        raise  # not Redis at the URL: a setting to fix, which error_middleware says
    except ENQUEUE_FAILURES as exc:
        ids = [job.job_id or "" for job in jobs]
        raise _Failed(enqueue_failed(ids, exc, batch=batch)) from None
    metrics = request.app[METRICS]
    lanes = request.app[CLIENT].settings.lanes
    if batch:
        pairs = zip(jobs, results, strict=True)
        enqueued = Counter(
            (job.type, lane_label(lanes, job.priority)) for job, r in pairs if not r.duplicate
        )
        for (job_type, lane), count in enqueued.items():
            metrics.count_enqueued(job_type, lane, count)
    elif not results[0].duplicate:
        metrics.count_enqueued(jobs[0].type, lane_label(lanes, jobs[0].priority))
    return [
        {
            "status": "accepted",
            "jobId": r.job_id,
            "streamEntryId": r.entry_id,
            "state": r.state,
            "duplicate": r.duplicate,
        }
        for r in results
    ]


def _epoch_ms(deadline: float) -> int:
    """The loop time ``deadline`` as epoch milliseconds (Redis's clock)."""
    return int((time.time() + deadline - asyncio.get_running_loop().time()) * 1000)


def _accepted_response(body: dict[str, Any]) -> web.Response:
    return web.Response(status=202, body=orjson.dumps(body), content_type="application/json")


@routes.post("/jobs")
async def post_job(request: web.Request) -> web.Response:
    """Enqueue one job: 202 accepted, or 422 naming every bad field."""
    try:
        job = JobIn.model_validate_json(await _json_body(request))
        key = _header_key(request, job)
        issues = request.app[JOB_TYPES].issues(job.type, job.payload)
        if issues:
            return invalid_job(issues)
        [accepted] = await _enqueue(request, [_new_job(job, key)], batch=False)
    except ValidationError as exc:
        return invalid_job(_issues(exc))
    except _Invalid as exc:
        return invalid_job(exc.issues)
    except _Failed as exc:
        return exc.response
    return _accepted_response(accepted)


@routes.post("/jobs/batch")
async def post_batch(request: web.Request) -> web.Response:
    """Enqueue many jobs in one round trip to Redis: all valid and enqueued, or none."""
    try:
        if IDEMPOTENCY_HEADER in request.headers:
            raise _Invalid([(IDEMPOTENCY_HEADER, "give idempotency_key per job in a batch")])
        batch = BatchIn.model_validate_json(await _json_body(request))
        limit = request.app[SETTINGS].max_batch_jobs
        if len(batch.jobs) > limit:
            raise _Invalid([("jobs", f"at most {limit} jobs per batch")])
        types = request.app[JOB_TYPES]
        issues = []
        for index, job in enumerate(batch.jobs):
            issues += types.issues(job.type, job.payload, prefix=f"jobs.{index}.")
        if issues:
            return invalid_job(issues)
        accepted = await _enqueue(request, [_new_job(job, None) for job in batch.jobs], batch=True)
    except ValidationError as exc:
        return invalid_job(_issues(exc))
    except _Invalid as exc:
        return invalid_job(exc.issues)
    except _Failed as exc:
        return exc.response
    return _accepted_response({"status": "accepted", "jobs": accepted})


@routes.get("/jobs/stats")
async def get_stats(request: web.Request) -> web.Response:
    """The queue's length, lag, pending, delayed and dead-letter counts, consumer groups."""
    client = request.app[CLIENT]
    samples = await client.partition_stats()
    body = client.summed(samples).as_dict()
    if len(samples) > 1:
        body["partitions"] = partition_rows(samples)
    return json_response(StatsOut.model_validate(body))


@routes.get(f"/jobs/{{job_id:{JOB_ID_PATTERN}}}")
async def get_job(request: web.Request) -> web.Response:
    """A job's state, attempts, timestamps, last error and result; 404 when unknown or
    expired. ``?wait=S``: a long poll, answered once the job settles or ``S`` seconds
    (capped by ``JOBQUEUE_MAX_WAIT_S``) passed, with the record as it is then."""
    job_id = request.match_info["job_id"]
    try:
        wait_s = requested_wait_s(request, request.app[SETTINGS].max_wait_s)
    except ValueError as exc:
        return json_error(422, "Invalid wait", f"query parameter 'wait' {exc}")
    client = request.app[CLIENT]
    info = await (client.wait(job_id, wait_s) if wait_s > 0 else client.get(job_id))
    if info is None:
        return json_error(404, "Job not found", f"no status record for {job_id!r} (or expired)")
    # A record keeps what it was given: a malformed entry's type, a hand-edited field.
    # Bytes that are not UTF-8 are shown as \\xNN (JSON cannot hold them; this was a 500).
    shown_texts: dict[str, Any] = {
        f.name: shown(value)
        for f in dataclasses.fields(info)
        if isinstance(value := getattr(info, f.name), str)
    }
    info = dataclasses.replace(info, **shown_texts)
    return json_response(
        JobStatusOut(
            jobId=info.job_id,
            state=info.state,
            type=info.type,
            attempts=info.attempts,
            enqueuedAt=info.enqueued_at,
            startedAt=info.started_at,
            finishedAt=info.finished_at,
            updatedAt=info.updated_at,
            runAt=info.run_at,
            lastError=info.last_error,
            streamEntryId=info.entry_id,
            cancelRequested=info.cancel_requested,
            deadEntryId=info.dead_entry_id,
            result=info.result,
            resultError=info.result_error,
            lane=info.lane,
        )
    )


@routes.delete(f"/jobs/{{job_id:{JOB_ID_PATTERN}}}")
async def cancel_job(request: web.Request) -> web.Response:
    """Cancel a queued or delayed job, or ask a running one to stop; the answer says which."""
    job_id = request.match_info["job_id"]
    outcome = await request.app[CLIENT].cancel(job_id)
    if outcome.answer == "not_found":
        return json_error(404, "Job not found", f"no status record for {job_id!r} (or expired)")
    if outcome.answer not in ("cancelled", "cancel_requested"):
        return json_error(409, "Job not cancellable", f"the job is already {outcome.state}")
    result: Literal["cancelled", "cancel_requested"] = (
        "cancelled" if outcome.answer == "cancelled" else "cancel_requested"
    )
    return json_response(CancelOut(jobId=job_id, result=result, state=shown(outcome.state)))
