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
OPENAPI = web.AppKey("openapi", dict[str, Any])
