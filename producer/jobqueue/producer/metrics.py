"""The producer's Prometheus metrics, in a registry of its own per app.

- ``jobqueue_http_requests_total{route,method,status}``
- ``jobqueue_http_request_duration_seconds{route}`` (histogram)
- ``jobqueue_jobs_enqueued_total{type,lane}`` (new jobs only; idempotent repeats not
  counted; ``lane`` the priority lane, empty for a queue without lanes)

``route`` is the route's pattern (``/jobs/{job_id}``), never the raw path, ``type``
only ever holds configured job types and ``lane`` the queue's few lanes, so label
cardinality stays low.

Requests are counted in plain Python numbers, and prometheus_client is imported only
when ``/metrics`` is first scraped, which renders them with the process collectors: its
``labels()`` and locked increments cost ~5 us of every request, and its import ~25 ms
of every start (bench/README.md). The text is the same as prometheus_client's own
`Counter` and `Histogram` write, ``_created`` series included.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from jobqueue.core.lanes import Lanes

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

UNMATCHED_ROUTE = "unmatched"
MAX_CACHED_SERIES = 1000
"""Label sets looked up by route object rather than by name: a bound, since a caller
chooses the method (and so part of the key) of unmatched requests."""
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""Upper bounds in seconds (prometheus_client's default buckets); +Inf follows."""
REQUESTS = (
    "jobqueue_http_requests",
    "HTTP requests answered, by route pattern, method and status.",
)
DURATION = ("jobqueue_http_request_duration_seconds", "Time to answer an HTTP request, in seconds.")
ENQUEUED = ("jobqueue_jobs_enqueued", "Jobs enqueued through the HTTP API, by type and lane.")


class _Count:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()


class _Durations:
    __slots__ = ("buckets", "created", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.sum = 0.0
        self.created = time.time()


class ProducerMetrics:
    """The three producer metrics; `registry` exposes them with the process collectors."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, str], _Count] = {}
        self._durations: dict[str, _Durations] = {}
        self._enqueued: dict[tuple[str, str], _Count] = {}
        self._answered: dict[tuple[object, str, int], tuple[_Count, _Durations]] = {}
        self._registry: CollectorRegistry | None = None

    def answered(self, request: web.Request, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        resource = request.match_info.route.resource
        key = (resource, request.method, status)
        series = self._answered.get(key)
        if series is None:
            route = resource.canonical if resource is not None else UNMATCHED_ROUTE
            series = self._series(route, request.method, status)
            if len(self._answered) < MAX_CACHED_SERIES:
                self._answered[key] = series
        count, durations = series
        count.value += 1
        durations.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        durations.sum += seconds

    def _series(self, route: str, method: str, status: int) -> tuple[_Count, _Durations]:
        labels = (route, method, str(status))
        count = self._requests.get(labels)
        if count is None:
            count = self._requests[labels] = _Count()
        durations = self._durations.get(route)
        if durations is None:
            durations = self._durations[route] = _Durations()
        return count, durations

    def count_enqueued(self, job_type: str, lane: str = "", count: int = 1) -> None:
        """``count`` new jobs of ``job_type`` (a configured type: few label values) in
        ``lane`` (`lane_label`)."""
        key = (job_type, lane)
        series = self._enqueued.get(key)
        if series is None:
            series = self._enqueued[key] = _Count()
        series.value += count

    @property
    def registry(self) -> CollectorRegistry:
        """The registry ``/metrics`` renders: the process collectors, then these three."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            from jobqueue.core.process_metrics import add_process_collectors

            self._registry = CollectorRegistry()
            add_process_collectors(self._registry)
            self._registry.register(_Collector(self))
        return self._registry

    def render(self) -> web.Response:
        """The ``/metrics`` response in Prometheus text format."""
        from prometheus_client import CONTENT_TYPE_LATEST
        from prometheus_client.exposition import generate_latest

        response = web.Response(body=generate_latest(self.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


class _Collector:
    """The three metrics as prometheus_client's families (a `Collector`)."""

    def __init__(self, metrics: ProducerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client import metrics as client_metrics
        from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.samples import Sample

        # The switch prometheus_client's own metrics obey (PROMETHEUS_DISABLE_CREATED_SERIES).
        created = bool(getattr(client_metrics, "_use_created", True))
        metrics = self._metrics
        requests = CounterMetricFamily(*REQUESTS, labels=["route", "method", "status"])
        for labels, count in list(metrics._requests.items()):
            requests.add_metric(labels, count.value, created=count.created if created else None)
        yield requests
        durations = HistogramMetricFamily(*DURATION, labels=["route"])
        bounds = [*(repr(bound) for bound in DURATION_BUCKETS), "+Inf"]  # as Histogram writes
        for route, series in list(metrics._durations.items()):
            cumulative, total = [], 0.0
            for bound, in_bucket in zip(bounds, series.buckets, strict=True):
                total += in_bucket
                cumulative.append((bound, total))
            durations.add_metric([route], cumulative, series.sum)
            if created:
                name = DURATION[0] + "_created"
                durations.samples.append(Sample(name, {"route": route}, series.created))
        yield durations
        enqueued = CounterMetricFamily(*ENQUEUED, labels=["type", "lane"])
        for (job_type, lane), count in list(metrics._enqueued.items()):
            enqueued.add_metric(
                [job_type, lane], count.value, created=count.created if created else None
            )
        yield enqueued


def lane_label(lanes: Lanes, priority: int) -> str:
    """The ``lane`` label of a job of ``priority``: its lane's name, '' without lanes."""
    lane = lanes.lane_for(priority)
    return "" if lane is None else lane.name


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
