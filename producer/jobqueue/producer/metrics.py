"""The producer's Prometheus metrics, in a registry of its own per app.

- ``jobqueue_http_requests_total{route,method,status}``
- ``jobqueue_http_request_duration_seconds{route}`` (histogram)
- ``jobqueue_jobs_enqueued_total{type}`` (new jobs only; idempotent repeats not counted)

``route`` is the route's pattern (``/jobs/{job_id}``), never the raw path, and
``type`` only ever holds configured job types, so label cardinality stays low.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from jobqueue.core.process_metrics import add_process_collectors

UNMATCHED_ROUTE = "unmatched"
MAX_CACHED_SERIES = 1000
"""Label sets whose metric children are kept for reuse: a bound, since a caller chooses
the method (and so part of the key) of unmatched requests."""


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
        # prometheus_client's ``labels()`` builds and checks the label tuple under a lock
        # on every call (~2 us each, three per request): the children are kept instead.
        self._answered: dict[tuple[object, str, int], tuple[Any, Any]] = {}
        self._enqueued: dict[str, Any] = {}

    def answered(self, request: web.Request, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        resource = request.match_info.route.resource
        key = (resource, request.method, status)
        children = self._answered.get(key)
        if children is None:
            route = resource.canonical if resource is not None else UNMATCHED_ROUTE
            children = (
                self.requests.labels(route, request.method, str(status)),
                self.duration.labels(route),
            )
            if len(self._answered) < MAX_CACHED_SERIES:
                self._answered[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_enqueued(self, job_type: str, count: int = 1) -> None:
        """``count`` new jobs of ``job_type`` (a configured type: few label values)."""
        child = self._enqueued.get(job_type)
        if child is None:
            child = self._enqueued[job_type] = self.enqueued.labels(job_type)
        child.inc(count)

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
            metrics.answered(request, status, time.perf_counter() - started)

    return middleware
