"""What local mode shows: the live view and the one-line log form of a snapshot."""

from __future__ import annotations

import dataclasses
from collections import Counter

from rich.console import Console

from jobqueue.core.backlog import LaneSample, QueueSample
from jobqueue.local.outcomes import DeadLetter, parse_outcomes
from jobqueue.local.view import Snapshot, plain_line, redact_url, render

SAMPLE = QueueSample(
    stream="jobs:work",
    group="workers",
    length=40,
    entries_added=140,
    lag=30,
    pending=8,
    delayed=2,
    dead_letters=1,
    lag_source="group",
)


def snapshot(**changes: object) -> Snapshot:
    base: dict[str, object] = {
        "queue_name": "demo",
        "redis_url": "redis://:s3cret@127.0.0.1:7000/0",
        "producer_url": "http://127.0.0.1:8080",
        "log_dir": "/tmp/logs",
        "elapsed_s": 12.34,
        "sample": SAMPLE,
        "arrival_rate": 12.5,
        "completion_rate": 7.25,
        "replicas_current": 2,
        "replicas_desired": 3,
        "max_replicas": 4,
        "reason": "backlog 38 at 10/replica",
        "outcomes": Counter({("email", "succeeded"): 90, ("report", "dead"): 1}),
        "dead_letters": (DeadLetter("1-0", "01J", "report", "attempts", "2026-01-01T00:00:00Z"),),
        "events": ("  1.0s started demo-w1 (pid 42)",),
    }
    base.update(changes)
    return Snapshot(**base)  # type: ignore[arg-type]


def test_the_log_line_carries_every_number_as_key_value() -> None:
    line = plain_line(snapshot())

    for part in (
        "t=12.3s",
        "lag=30",
        "pending=8",
        "delayed=2",
        "dead=1",
        "in=12.5/s",
        "out=7.2/s",
        "replicas=2/3",
        "stopping=0",
        "succeeded=90",
        "reason='backlog 38 at 10/replica'",
    ):
        assert part in line


def test_the_log_line_says_when_redis_is_unreachable() -> None:
    line = plain_line(snapshot(sample=None, error="Connection refused"))

    assert "error='Connection refused'" in line
    assert "lag=" not in line


def test_the_live_view_shows_queue_workers_outcomes_and_hides_the_password() -> None:
    console = Console(record=True, width=140)
    console.print(render(snapshot()))
    text = console.export_text()

    for expected in ("lag (waiting)", "30", "2 / 3", "email", "90", "attempts", "demo-w1"):
        assert expected in text
    assert "s3cret" not in text
    assert "redis://:***@127.0.0.1:7000/0" in text


def test_a_queue_with_lanes_shows_each_lane_in_the_line_and_the_view() -> None:
    lanes = (
        LaneSample("high", "{jobs:work}:lane:high", 5, 5, 4, 1, "group"),
        LaneSample("normal", "jobs:work", 26, 26, 26, 7, "group"),
    )
    snap = snapshot(sample=dataclasses.replace(SAMPLE, lanes=lanes))
    console = Console(record=True, width=140)
    console.print(render(snap))
    text = console.export_text()

    assert "lanes=high:4,normal:26" in plain_line(snap)
    assert "lane high" in text
    assert "4 waiting, 1 running" in text


def test_redact_url_keeps_urls_without_password() -> None:
    assert redact_url("redis://127.0.0.1:6380/1") == "redis://127.0.0.1:6380/1"
    assert redact_url("rediss://u:p@h:1/0") == "rediss://u:***@h:1/0"


def test_outcome_counts_are_read_from_the_workers_prometheus_counter() -> None:
    text = (
        "# HELP jobqueue_jobs_total Jobs finished.\n"
        "# TYPE jobqueue_jobs_total counter\n"
        'jobqueue_jobs_total{type="email",outcome="succeeded"} 5.0\n'
        'jobqueue_jobs_total{type="email",outcome="retried"} 2.0\n'
        'jobqueue_jobs_created{type="email",outcome="retried"} 1.7e9\n'
    )

    assert parse_outcomes(text) == Counter({("email", "succeeded"): 5, ("email", "retried"): 2})


def test_the_live_view_says_when_redis_is_unreachable() -> None:
    console = Console(record=True, width=140)
    console.print(render(snapshot(sample=None, error="Connection refused", dead_letters=())))
    text = console.export_text()

    assert "Redis unreachable: Connection refused" in text
    assert "2 / 3" in text  # the workers stay shown: they keep running meanwhile


def test_redact_url_hides_both_passwords_of_a_sentinel_url_and_keeps_its_hosts() -> None:
    url = "redis+sentinel://:pw@s0:26379,s1:26379/mymaster/0?sentinel_password=spw&x=1"
    assert redact_url(url) == (
        "redis+sentinel://:***@s0:26379,s1:26379/mymaster/0?sentinel_password=***&x=1"
    )


def test_a_partitioned_queue_shows_the_lag_of_each_partition() -> None:
    snap = snapshot(partition_lags=(12, 0, 18))
    console = Console(record=True, width=140)
    console.print(render(snap))

    assert "partition_lag=12/0/18" in plain_line(snap)
    assert "12 / 0 / 18" in console.export_text()
    assert "partition_lag" not in plain_line(snapshot())  # one partition: as before
