"""A histogram by queue and job type, fed a batch at a time (handler durations, waits).

prometheus_client's `Histogram` takes one observation per call, each under two locks
(~1.3 µs); the success path records one flush of durations at once. This collector
keeps the same series (``_bucket`` with ``le``, ``_count``, ``_sum`` per ``queue`` and
``type``; one worker serves one queue, so ``queue`` is fixed per histogram) as
plain counts, exact, with one `bisect` per observation. It is updated and scraped on
the worker's event loop only, so it needs no lock.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import cast

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# The client's own formatting of ``le`` (``0.005``, ``1.0``, ``+Inf``); it is untyped.
_le_label = cast(Callable[[float], str], floatToGoString)


@dataclass(slots=True)
class _Counts:
    buckets: list[int]
    """Observations per bucket (not cumulative), the last one for ``+Inf``."""
    sum_s: float = 0.0


class DurationHistogram(Collector):
    """Durations in seconds by job type, for one queue, with fixed bucket bounds."""

    def __init__(
        self,
        name: str,
        documentation: str,
        bounds_s: tuple[float, ...],
        registry: CollectorRegistry,
        queue: str = "",
    ) -> None:
        if list(bounds_s) != sorted(bounds_s):
            raise ValueError("bucket bounds must be sorted")
        self.queue = queue
        self.name = name
        self.documentation = documentation
        self.bounds_s = (*bounds_s, math.inf)
        self._labels = [_le_label(bound) for bound in self.bounds_s]
        self._bounds_ms = [bound * 1000 for bound in self.bounds_s]
        self._by_type: dict[str, _Counts] = {}
        registry.register(self)

    def observe(self, job_type: str, durations_s: Iterable[float]) -> None:
        """Record handler durations (seconds) of jobs of one type."""
        counts = self._by_type.get(job_type)
        if counts is None:
            counts = self._by_type[job_type] = _Counts([0] * len(self.bounds_s))
        buckets, bounds = counts.buckets, self.bounds_s
        for duration_s in durations_s:
            # The first bound >= the duration: Prometheus buckets are "less or equal".
            buckets[bisect_left(bounds, duration_s)] += 1
            counts.sum_s += duration_s

    def observe_ms(self, job_type: str, durations_ms: Iterable[tuple[int, int]]) -> None:
        """Record (whole milliseconds, how many jobs) of jobs of one type; negative
        durations (clocks apart) count as 0."""
        counts = self._by_type.get(job_type)
        if counts is None:
            counts = self._by_type[job_type] = _Counts([0] * len(self.bounds_s))
        buckets, bounds_ms = counts.buckets, self._bounds_ms
        total_ms = 0
        for duration_ms, jobs in durations_ms:
            if duration_ms < 0:
                duration_ms = 0
            buckets[bisect_left(bounds_ms, duration_ms)] += jobs
            total_ms += duration_ms * jobs
        counts.sum_s += total_ms / 1000

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=["queue", "type"])
        for job_type, counts in self._by_type.items():
            cumulative = accumulate(counts.buckets)
            buckets = [(le, float(n)) for le, n in zip(self._labels, cumulative, strict=True)]
            family.add_metric([self.queue, job_type], buckets, counts.sum_s)
        yield family
