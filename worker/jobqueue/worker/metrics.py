"""The worker's Prometheus metrics (names in docs/internals.md).

Each worker owns a registry, so several workers in one process (tests, local mode) never
share counters. Label values are bounded: a job type without a handler is counted as
``_unknown`` so a misbehaving producer cannot explode the series count.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from jobqueue.worker.durations import DurationHistogram

UNKNOWN_TYPE = "_unknown"
DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class WorkerMetrics:
    """Counters, gauge and histogram one worker updates."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.jobs = Counter(
            "jobqueue_jobs_total",
            "Jobs finished by this worker, by type and outcome.",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.duration = DurationHistogram(
            "jobqueue_job_duration_seconds",
            "Handler run time per attempt, seconds.",
            DURATION_BUCKETS_S,
            self.registry,
        )
        self.in_flight = Gauge(
            "jobqueue_jobs_in_flight",
            "Jobs delivered to this worker and not yet acknowledged.",
            registry=self.registry,
        )
        self.reclaimed = Counter(
            "jobqueue_jobs_reclaimed_total",
            "Entries taken over from idle consumers with XAUTOCLAIM.",
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "jobqueue_jobs_dead_lettered_total",
            "Jobs moved to the dead-letter stream, by type and reason.",
            ["type", "reason"],
            registry=self.registry,
        )
        # labels() costs a lock and a dict lookup; the success path caches its children.
        self._succeeded: dict[str, Counter] = {}

    def succeeded(self, job_type: str, count: int, durations_s: list[float]) -> None:
        """Record ``count`` successes of one type and their handler durations."""
        counter = self._succeeded.get(job_type)
        if counter is None:
            counter = self._succeeded[job_type] = self.jobs.labels(job_type, "succeeded")
        counter.inc(count)
        self.duration.observe(job_type, durations_s)

    def finished(self, job_type: str, outcome: str, duration_s: float | None) -> None:
        """Record one job that ended ``retried``, ``dead`` or ``cancelled``."""
        self.jobs.labels(job_type, outcome).inc()
        if duration_s is not None:
            self.duration.observe(job_type, (duration_s,))

    def dead(self, job_type: str, reason: str) -> None:
        self.dead_lettered.labels(job_type, reason).inc()
