"""The worker's Prometheus metrics (names in docs/internals.md).

Each worker owns a registry, so several workers in one process (tests, local mode) never
share counters. Every series carries ``queue``, the worker's stream, so a namespace with
several JobQueues can be split per queue. Label values are bounded: a job type without a
handler is counted as ``_unknown`` so a misbehaving producer cannot explode the series
count. The registry also holds the standard process collectors and the Redis errors.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from jobqueue.core.process_metrics import add_process_collectors
from jobqueue.worker.durations import DurationHistogram
from jobqueue.worker.inflight import Delivery

UNKNOWN_TYPE = "_unknown"
DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
WAIT_BUCKETS_S = (
    *(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    *(120, 300, 600, 1800, 3600),
)


class WorkerMetrics:
    """Counters, gauge and histograms one worker of queue ``queue`` updates."""

    def __init__(self, registry: CollectorRegistry | None = None, queue: str = "") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.queue = queue
        self.jobs = Counter(
            "jobqueue_jobs_total",
            "Jobs finished by this worker, by queue, type and outcome.",
            ["queue", "type", "outcome"],
            registry=self.registry,
        )
        self.duration = DurationHistogram(
            "jobqueue_job_duration_seconds",
            "Handler run time per attempt, seconds.",
            DURATION_BUCKETS_S,
            self.registry,
            queue,
        )
        self.wait = DurationHistogram(
            "jobqueue_job_wait_seconds",
            "Time from a job's stream entry (enqueue, or a retry's return) to its start, seconds.",
            WAIT_BUCKETS_S,
            self.registry,
            queue,
        )
        # One series each, for this worker's queue: the labelled children are kept.
        self.in_flight = Gauge(
            "jobqueue_jobs_in_flight",
            "Jobs delivered to this worker and not yet acknowledged.",
            ["queue"],
            registry=self.registry,
        ).labels(queue)
        self.reclaimed = Counter(
            "jobqueue_jobs_reclaimed_total",
            "Entries taken over from idle consumers with XAUTOCLAIM.",
            ["queue"],
            registry=self.registry,
        ).labels(queue)
        self.dead_lettered = Counter(
            "jobqueue_jobs_dead_lettered_total",
            "Jobs moved to the dead-letter stream, by queue, type and reason.",
            ["queue", "type", "reason"],
            registry=self.registry,
        )
        self.lane_deliveries: list[Counter] = []
        """Per lane (highest first), with lanes: `count_lanes`."""
        add_process_collectors(self.registry)
        # labels() costs a lock and a dict lookup; the success path caches its children.
        self._succeeded: dict[str, Counter] = {}

    def count_lanes(self, names: list[str]) -> None:
        """Count the entries taken from each priority lane (``names``, highest first):
        one increment per read batch and lane, nothing per job. The engines of a
        partitioned worker share these metrics and their lanes: counted once."""
        if self.lane_deliveries:
            return
        counter = Counter(
            "jobqueue_lane_deliveries_total",
            "Entries this worker took from each priority lane (read, drained or reclaimed).",
            ["queue", "lane"],
            registry=self.registry,
        )
        self.lane_deliveries = [counter.labels(self.queue, name) for name in names]

    def succeeded(self, job_type: str, count: int, durations_s: list[float]) -> None:
        """Record ``count`` successes of one type and their handler durations."""
        counter = self._succeeded.get(job_type)
        if counter is None:
            counter = self.jobs.labels(self.queue, job_type, "succeeded")
            self._succeeded[job_type] = counter
        counter.inc(count)
        self.duration.observe(job_type, durations_s)

    def started(self, deliveries: list[Delivery], now_s: float) -> None:
        """Record how long each of one read batch's jobs waited (`time.time` seconds now).

        The wait runs from the entry's id (the time Redis added it: the enqueue, or a
        retry's or delayed job's return to the stream) to ``now_s``; a clock behind
        Redis's counts as no wait.
        """
        # Entries added in the same millisecond waited alike: one bucket lookup per
        # distinct time (a batch read from a backlog holds few), a counter per entry.
        now_ms = int(now_s * 1000)
        by_type: dict[str, dict[str, int]] = {}
        last_type, added = "", None
        for d in deliveries:
            entry_id, job = d.entry_id, d.job
            if job is None:
                continue
            if job.type != last_type or added is None:  # a batch is mostly one type
                last_type = job.type
                added = by_type.setdefault(last_type, {})
            ms = entry_id[: entry_id.find("-")]
            added[ms] = added.get(ms, 0) + 1
        for job_type, added_ms in by_type.items():
            self.wait.observe_ms(job_type, [(now_ms - int(ms), n) for ms, n in added_ms.items()])

    def finished(self, job_type: str, outcome: str, duration_s: float | None) -> None:
        """Record one job that ended ``retried``, ``dead`` or ``cancelled``."""
        self.jobs.labels(self.queue, job_type, outcome).inc()
        if duration_s is not None:
            self.duration.observe(job_type, (duration_s,))

    def dead(self, job_type: str, reason: str) -> None:
        self.dead_lettered.labels(self.queue, job_type, reason).inc()
