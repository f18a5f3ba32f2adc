"""The typed application keys every route module reads (set up by `app.create_app`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobqueue.core.client import AsyncClient
from jobqueue.producer.batching import EnqueueBatcher
from jobqueue.producer.job_types import JobTypes
from jobqueue.producer.metrics import ProducerMetrics
from jobqueue.producer.settings import ProducerSettings

SETTINGS = web.AppKey("settings", ProducerSettings)
CLIENT = web.AppKey("client", AsyncClient)
BATCHER = web.AppKey("batcher", EnqueueBatcher)
JOB_TYPES = web.AppKey("job_types", JobTypes)
METRICS = web.AppKey("metrics", ProducerMetrics)


class OpenApiDocument:
    """The OpenAPI document, built on its first request: building it (pydantic's JSON
    Schema generation) is start-up time no request to ``/jobs`` needs."""

    def __init__(self, job_types: JobTypes, *, auth: bool) -> None:
        self._job_types, self._auth = job_types, auth
        self._document: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        if self._document is None:
            from jobqueue.producer.openapi import build_openapi

            self._document = build_openapi(self._job_types, auth=self._auth)
        return self._document


OPENAPI = web.AppKey("openapi", OpenApiDocument)
