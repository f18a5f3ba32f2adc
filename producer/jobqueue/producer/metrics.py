"""The producer's Prometheus metrics, in a registry of its own per app.

- ``jobqueue_http_requests_total{route,method,status}``
- ``jobqueue_http_request_duration_seconds{route}`` (histogram)
- ``jobqueue_jobs_enqueued_total{type}`` (new jobs only; idempotent repeats not counted)

``route`` is the route's pattern (``/jobs/{job_id}``), never the raw path, and
``type`` only ever holds configured job types, so label cardinality stays low.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from jobqueue.core.process_metrics import add_process_collectors

UNMATCHED_ROUTE = "unmatched"


class ProducerMetrics:
    """The three producer metrics and their registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        add_process_collectors(self.registry)
        self.requests = Counter(
            "jobqueue_http_requests",
            "HTTP requests answered, by route pattern, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "jobqueue_http_request_duration_seconds",
            "Time to answer an HTTP request, in seconds.",
            ["route"],
            registry=self.registry,
        )
        self.enqueued = Counter(
            "jobqueue_jobs_enqueued",
            "Jobs enqueued through the HTTP API, by type.",
            ["type"],
            registry=self.registry,
        )

    def render(self) -> web.Response:
        """The ``/metrics`` response in Prometheus text format."""
        response = web.Response(body=generate_latest(self.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


def metrics_middleware(metrics: ProducerMetrics) -> Middleware:
    """Counts and times every request; must be the outermost middleware."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = _route_label(request)
            metrics.requests.labels(route, request.method, str(status)).inc()
            metrics.duration.labels(route).observe(time.perf_counter() - started)

    return middleware


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE
