"""What every process's /metrics carries besides its own: process, platform, GC, Redis errors."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from jobqueue.core import redis_errors


def add_process_collectors(registry: CollectorRegistry) -> None:
    """Register prometheus_client's standard collectors (``process_*``, ``python_info``,
    ``python_gc_*``) and ``jobqueue_redis_errors_total`` in ``registry``.

    The components keep registries of their own (several workers share a process in
    tests and benchmarks); the standard collectors describe the process, so each
    registry gets the same ones.
    """
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    RedisErrorsCollector(registry)


class RedisErrorsCollector(Collector):
    """Exposes this process's Redis error counts (`jobqueue.core.redis_errors`) in one
    registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            redis_errors.NAME,
            "Redis errors this process caught and rode out, by component and kind.",
            labels=["component", "kind"],
        )
        for (component, kind), value in redis_errors.counts():
            family.add_metric([component, kind], value)
        yield family
