"""The operator's Prometheus metrics (names from docs/internals.md) and its HTTP endpoint.

Each `OperatorMetrics` owns a private registry, so two operators in one process (tests)
never collide. Labels are ``namespace`` and ``jobqueue`` (low cardinality: one series
per JobQueue); the per-stream gauges of a queue with priority lanes add ``lane`` (at
most ten per queue), beside the queue's sums.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from jobqueue.core.backlog import QueueSample
from jobqueue.core.process_metrics import add_process_collectors
from jobqueue.operator.policy import Decision, Sample

LABELS = ("namespace", "jobqueue")
LANE_LABELS = (*LABELS, "lane")


class OperatorMetrics:
    """Gauges of each JobQueue's last sample and decision, and a counter of scalings."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.lag = Gauge("jobqueue_queue_lag_jobs", "Jobs never delivered", LABELS, registry=reg)
        self.pending = Gauge(
            "jobqueue_queue_pending_jobs", "Jobs delivered, not acknowledged", LABELS, registry=reg
        )
        self.delayed = Gauge(
            "jobqueue_queue_delayed_jobs", "Delayed jobs and retries", LABELS, registry=reg
        )
        self.dead = Gauge(
            "jobqueue_queue_dead_letters", "Entries in the dead-letter stream", LABELS, registry=reg
        )
        self.arrival = Gauge(
            "jobqueue_queue_arrival_rate_jobs_per_second", "Jobs added", LABELS, registry=reg
        )
        self.completion = Gauge(
            "jobqueue_queue_completion_rate_jobs_per_second", "Jobs done", LABELS, registry=reg
        )
        self.replicas = Gauge(
            "jobqueue_worker_replicas",
            "Worker replicas: current (spec), desired, ready (Deployment status), max (spec)",
            (*LABELS, "kind"),
            registry=reg,
        )
        self.limited = Gauge(
            "jobqueue_scaling_limited",
            "1 while the load asks for more workers than maxReplicas allows",
            LABELS,
            registry=reg,
        )
        self.decisions = Counter(
            "jobqueue_scaling_decisions",
            "Scaling decisions that changed replicas",
            (*LABELS, "direction"),
            registry=reg,
        )
        self.oldest_age = Gauge(
            "jobqueue_queue_oldest_job_age_seconds",
            "Age of the oldest entry not yet delivered to the group (from its id), seconds",
            LABELS,
            registry=reg,
        )
        self.lane_lag = Gauge(
            "jobqueue_queue_lane_lag_jobs",
            "Jobs never delivered, per priority lane (queues with lanes only)",
            LANE_LABELS,
            registry=reg,
        )
        self.lane_pending = Gauge(
            "jobqueue_queue_lane_pending_jobs",
            "Jobs delivered, not acknowledged, per priority lane (queues with lanes only)",
            LANE_LABELS,
            registry=reg,
        )
        self.lane_oldest_age = Gauge(
            "jobqueue_queue_lane_oldest_job_age_seconds",
            "Age of the oldest entry of a priority lane not yet delivered, seconds (queues"
            " with lanes only): a low lane starved by a busy high one shows here first",
            LANE_LABELS,
            registry=reg,
        )
        self._lanes: dict[tuple[str, str], set[str]] = {}
        """The lanes each JobQueue has series of, to drop those of a removed lane."""
        self.last_sample = Gauge(
            "jobqueue_operator_last_sample_timestamp_seconds",
            "Unix time of the last successful sample of the queue",
            LABELS,
            registry=reg,
        )
        self.partition_lag = Gauge(
            "jobqueue_queue_partition_lag_jobs",
            "Jobs never delivered, per partition (the queue's sum is jobqueue_queue_lag_jobs)",
            (*LABELS, "partition"),
            registry=reg,
        )
        self.partition_pending = Gauge(
            "jobqueue_queue_partition_pending_jobs",
            "Jobs delivered, not acknowledged, per partition",
            (*LABELS, "partition"),
            registry=reg,
        )
        self._partitions: dict[tuple[str, str], int] = {}
        add_process_collectors(reg)

    def sampled(
        self,
        namespace: str,
        name: str,
        sample: QueueSample,
        now_s: float,
        partitions: Sequence[QueueSample] = (),
    ) -> None:
        """Record one successful read of a JobQueue's queue at ``now_s`` (`time.time`),
        and of each of its ``partitions``."""
        self.oldest_age.labels(namespace, name).set(sample.oldest_waiting_age_s(now_s))
        self.last_sample.labels(namespace, name).set(now_s)
        for index, part in enumerate(partitions):
            self.partition_lag.labels(namespace, name, str(index)).set(part.lag)
            self.partition_pending.labels(namespace, name, str(index)).set(part.pending)
        self._partitions[(namespace, name)] = len(partitions)
        lanes = {lane.name for lane in sample.lanes}
        for gone in self._lanes.get((namespace, name), set()) - lanes:
            for gauge in (self.lane_lag, self.lane_pending, self.lane_oldest_age):
                _remove(gauge, namespace, name, gone)
        self._lanes[(namespace, name)] = lanes
        for lane in sample.lanes:
            self.lane_lag.labels(namespace, name, lane.name).set(lane.lag)
            self.lane_pending.labels(namespace, name, lane.name).set(lane.pending)
            age_s = lane.oldest_waiting_age_s(now_s)
            self.lane_oldest_age.labels(namespace, name, lane.name).set(age_s)

    def observe(
        self,
        namespace: str,
        name: str,
        sample: Sample,
        dead: int,
        decision: Decision,
        *,
        ready: int | None = None,
        max_replicas: int | None = None,
    ) -> None:
        """Record one poll of one JobQueue; ``ready`` (the Deployment's ready pods, when
        known) and ``max_replicas`` feed the alerts on unready and pinned workers."""
        labels = (namespace, name)
        self.lag.labels(*labels).set(sample.lag)
        self.pending.labels(*labels).set(sample.pending)
        self.delayed.labels(*labels).set(sample.delayed)
        self.dead.labels(*labels).set(dead)
        self.arrival.labels(*labels).set(sample.arrival_rate)
        self.completion.labels(*labels).set(sample.completion_rate)
        self.replicas.labels(*labels, "current").set(sample.replicas)
        self.replicas.labels(*labels, "desired").set(decision.replicas)
        if ready is not None:
            self.replicas.labels(*labels, "ready").set(ready)
        if max_replicas is not None:
            self.replicas.labels(*labels, "max").set(max_replicas)
        self.limited.labels(*labels).set(1 if decision.limited else 0)
        if decision.direction != "none":
            self.decisions.labels(*labels, decision.direction).inc()

    def forget(self, namespace: str, name: str) -> None:
        """Drop the series of a deleted JobQueue."""
        for gauge in (self.lag, self.pending, self.delayed, self.dead, self.arrival):
            _remove(gauge, namespace, name)
        _remove(self.completion, namespace, name)
        _remove(self.limited, namespace, name)
        _remove(self.oldest_age, namespace, name)
        _remove(self.last_sample, namespace, name)
        for index in range(self._partitions.pop((namespace, name), 0)):
            _remove(self.partition_lag, namespace, name, str(index))
            _remove(self.partition_pending, namespace, name, str(index))
        for kind in ("current", "desired", "ready", "max"):
            _remove(self.replicas, namespace, name, kind)
        for direction in ("up", "down"):
            _remove(self.decisions, namespace, name, direction)
        for lane in self._lanes.pop((namespace, name), set()):
            for gauge in (self.lane_lag, self.lane_pending, self.lane_oldest_age):
                _remove(gauge, namespace, name, lane)

    def exposition(self) -> tuple[bytes, str]:
        """The text format body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _remove(metric: Gauge | Counter, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never observed: nothing to drop
        metric.remove(*labels)
