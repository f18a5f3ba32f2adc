"""What every process's /metrics carries besides its own: process, platform, GC, Redis errors."""

from __future__ import annotations

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry

from jobqueue.core.redis_errors import RedisErrorsCollector


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
