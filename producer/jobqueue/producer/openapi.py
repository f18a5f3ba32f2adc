"""``GET /openapi.json``: the OpenAPI 3.1 document, generated from `models`.

The operation table below is the one list of what the API offers; request and response
schemas come from the pydantic models, so the document cannot drift from validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from jobqueue.core.client_types import INT64_MIN, JOB_ID_PATTERN, UINT64_MAX
from jobqueue.producer import models as m
from jobqueue.producer.job_types import JobTypes
from jobqueue.producer.routes_dead import ENTRY_ID_PATTERN, MAX_PAGE
from jobqueue.producer.routes_jobs import IDEMPOTENCY_HEADER

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    responses: dict[int, type[BaseModel]]
    body: type[BaseModel] | None = None
    parameters: list[dict[str, Any]] = field(default_factory=list)
    open: bool = False
    """Reachable without a token when authentication is on."""


def _path_param(name: str, pattern: str) -> dict[str, Any]:
    schema = {"type": "string", "pattern": f"^{pattern}$"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


JOB_ID = _path_param("job_id", JOB_ID_PATTERN)
ENTRY_ID = _path_param("entry_id", ENTRY_ID_PATTERN)
DEAD_JOB = {
    "name": "jobId",
    "in": "query",
    "required": False,
    "description": "The job whose dead letter is meant, when dead letters of several"
    " partitions have this entry id (409 otherwise).",
    "schema": {"type": "string", "pattern": f"^{JOB_ID_PATTERN}$"},
}
IDEMPOTENCY = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}
WAIT = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": "Long poll: answer once the job settles (succeeded, dead, cancelled)"
    " or after this many seconds (capped by JOBQUEUE_MAX_WAIT_S), with the record then.",
    "schema": {"type": "number", "minimum": 0},
}
PAGE = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    },
    {
        "name": "after",
        "in": "query",
        "schema": {"type": "string", "pattern": f"^{ENTRY_ID_PATTERN}$"},
    },
]
UNAVAILABLE = (
    "Redis is unavailable or did not answer by the request's deadline; see Retry-After. An"
    " enqueue says what became of its jobs: outcome not_enqueued or unknown, with jobId"
    " (jobIds for a batch). Retrying with the same job_id (or idempotency key) never"
    " enqueues a job twice; GET /jobs/{jobId} tells whether it was enqueued."
)
JSON_VALUE_REF = {"$ref": REF.format(model="JsonValue")}
JSON_VALUE = {
    "description": "Any JSON value whose integers fit 64 bits (a worker reads no wider).",
    "anyOf": [
        {"type": ["null", "boolean", "string"]},
        {"type": "number", "not": {"type": "integer"}},
        {"type": "integer", "minimum": INT64_MIN, "maximum": UINT64_MAX},
        {"type": "array", "items": JSON_VALUE_REF},
        {"type": "object", "additionalProperties": JSON_VALUE_REF},
    ],
}
E = m.ErrorBody
OPERATIONS = [
    Operation("post", "/jobs", "Enqueue one job",
              {202: m.Accepted, 413: E, 415: E, 422: m.InvalidJob},
              m.JobIn, [IDEMPOTENCY]),
    Operation("post", "/jobs/batch", "Enqueue many jobs, all or nothing",
              {202: m.BatchAccepted, 413: E, 415: E, 422: m.InvalidJob}, m.BatchIn),
    Operation("get", "/jobs/stats", "Queue length, lag, pending, delayed, dead letters",
              {200: m.StatsOut}),
    Operation("get", "/jobs/{job_id}", "A job's status and result; ?wait= to long-poll",
              {200: m.JobStatusOut, 404: E, 422: E}, parameters=[JOB_ID, WAIT]),
    Operation("delete", "/jobs/{job_id}", "Cancel a job (or ask a running one to stop)",
              {200: m.CancelOut, 404: E, 409: E}, parameters=[JOB_ID]),
    Operation("get", "/dead", "Dead letters, oldest first, paged", {200: m.DeadPageOut, 400: E},
              parameters=PAGE),
    Operation("post", "/dead/{entry_id}/replay", "Replay a dead letter onto the stream",
              {200: m.ReplayOut, 404: E, 409: E}, parameters=[ENTRY_ID, DEAD_JOB]),
    Operation("delete", "/dead/{entry_id}", "Delete a dead letter",
              {200: m.DeletedOut, 404: E, 409: E}, parameters=[ENTRY_ID, DEAD_JOB]),
    Operation("get", "/healthz", "Liveness", {200: m.HealthOut}, open=True),
    Operation("get", "/readyz", "Readiness: Redis answers", {200: m.HealthOut, 503: E}, open=True),
]  # fmt: skip


def build_openapi(job_types: JobTypes, *, auth: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document; a job's ``payload`` schema is its type's, so the document
    says exactly which bodies are accepted."""
    models = {model for op in OPERATIONS for model in [op.body, *op.responses.values()] if model}
    _, top = models_json_schema(
        [(model, "validation" if model in (m.JobIn, m.BatchIn) else "serialization")
         for model in sorted(models, key=lambda model: model.__name__)],
        ref_template=REF,
    )  # fmt: skip
    schemas: dict[str, Any] = top["$defs"]
    schemas["JobIn"]["properties"]["type"]["enum"] = job_types.names
    schemas["JobIn"]["oneOf"] = [_payload_of(name, job_types) for name in job_types.names]
    schemas["JobIn"]["properties"]["payload"]["additionalProperties"] = JSON_VALUE_REF
    schemas["JsonValue"] = JSON_VALUE
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, auth)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "jobqueue producer", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth:
        scheme = {"type": "http", "scheme": "bearer"}
        document["components"]["securitySchemes"] = {"bearerAuth": scheme}
    return document


def _payload_of(name: str, job_types: JobTypes) -> dict[str, Any]:
    """The branch of ``JobIn`` for one job type: that type, and its payload schema."""
    payload = _bounded_integers(dict(job_types.schemas[name] or {}))
    payload.setdefault("type", "object")
    return {
        "properties": {"type": {"const": name}, "payload": payload},
        "required": ["type"],
    }


def _bounded_integers(schema: Any) -> Any:
    """``schema`` with the 64-bit range on every integer it declares or lets through: a
    payload holding a wider one is refused (no worker could read it back exactly)."""
    if isinstance(schema, list):
        return [_bounded_integers(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: _bounded_integers(value) for key, value in schema.items()}
    kinds = schema.get("type")
    if kinds == "integer" or (isinstance(kinds, list) and "integer" in kinds):
        bounded.setdefault("minimum", INT64_MIN)
        bounded.setdefault("maximum", UINT64_MAX)
    if kinds == "object":
        bounded.setdefault("additionalProperties", JSON_VALUE_REF)
    if kinds == "array":
        bounded.setdefault("items", JSON_VALUE_REF)
    return bounded


def _operation(op: Operation, auth: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    statuses = dict(op.responses)
    if auth and not op.open:
        statuses[401] = m.ErrorBody
    if not op.open:
        statuses[503] = m.ErrorBody
    for status, model in sorted(statuses.items()):
        content = {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}
        description = UNAVAILABLE if status == 503 else op.summary
        responses[str(status)] = {"description": description, "content": content}
    operation: dict[str, Any] = {"summary": op.summary, "responses": responses}
    if op.parameters:
        operation["parameters"] = op.parameters
    if op.body is not None:
        schema = {"$ref": REF.format(model=op.body.__name__)}
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    if auth and not op.open:
        operation["security"] = [{"bearerAuth": []}]
    return operation
