"""The batch-fed duration histogram exposes what prometheus_client's Histogram would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from jobqueue.worker.durations import DurationHistogram
from jobqueue.worker.metrics import DURATION_BUCKETS_S

NAME, HELP = "jobqueue_job_duration_seconds", "Handler run time per attempt, seconds."


def exposition(registry: CollectorRegistry) -> list[str]:
    lines = generate_latest(registry).decode().splitlines()
    return [line for line in lines if f"{NAME}_created" not in line]


def test_batches_give_the_same_series_as_one_observation_at_a_time() -> None:
    # given the same durations, on bucket bounds, between them, below and above all
    durations = {"email": [1e-7, 0.005, 0.0051, 0.25, 0.3, 60, 400], "sms": [0.01]}
    ours, reference = CollectorRegistry(), CollectorRegistry()
    histogram = DurationHistogram(NAME, HELP, DURATION_BUCKETS_S, ours, "jobs:work")
    labels = ["queue", "type"]
    client = Histogram(NAME, HELP, labels, buckets=DURATION_BUCKETS_S, registry=reference)
    # when ours gets them in batches and the client's one by one
    for job_type, values in durations.items():
        histogram.observe(job_type, values[:3])
        histogram.observe(job_type, values[3:])
        for value in values:
            client.labels("jobs:work", job_type).observe(value)
    # then the exposition is the same, buckets, counts and sums
    assert exposition(ours) == exposition(reference)
    assert f'{NAME}_bucket{{le="0.005",queue="jobs:work",type="email"}} 2.0' in exposition(ours)


def test_unsorted_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        DurationHistogram(NAME, HELP, (1.0, 0.5), CollectorRegistry())
