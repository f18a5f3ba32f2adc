"""Backoff: exponential ceilings, full jitter, a cap."""

from __future__ import annotations

import random

import pytest

from jobqueue.core.errors import ConfigError
from jobqueue.worker.backoff import Backoff
from jobqueue.worker.settings import WorkerSettings


def test_ceiling_doubles_per_attempt_until_the_cap() -> None:
    backoff = Backoff(base_s=1.0, cap_s=10.0)
    assert [backoff.ceiling_s(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_the_highest_draw_gives_the_ceiling_and_the_lowest_zero() -> None:
    assert Backoff(base_s=0.5, rng=lambda: 1.0).delay_s(3) == 2.0
    assert Backoff(base_s=0.5, rng=lambda: 0.0).delay_s(3) == 0.0


def test_delays_spread_over_the_whole_window() -> None:
    rng = random.Random(7)
    backoff = Backoff(base_s=1.0, cap_s=100.0, rng=rng.random)
    delays = [backoff.delay_s(4) for _ in range(2000)]
    assert all(0 <= d <= 8 for d in delays)
    assert min(delays) < 0.5
    assert max(delays) > 7.5


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert Backoff(base_s=1.0, cap_s=60.0).ceiling_s(100_000) == 60.0


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        Backoff(base_s=-1)
    with pytest.raises(ConfigError):
        Backoff(factor=0.5)


def test_the_default_retry_budget_outlasts_an_hour_long_incident_on_average() -> None:
    # given the worker's defaults (README: "retried for about 55 minutes")
    settings = WorkerSettings()
    rng = random.Random(11)
    backoff = Backoff(base_s=settings.backoff_base_s, cap_s=settings.backoff_cap_s, rng=rng.random)
    # when a job fails every attempt, the waits between its attempts add up to
    windows_min = sorted(
        sum(backoff.delay_s(n) for n in range(1, settings.max_attempts)) / 60 for _ in range(4000)
    )
    # then on average close to an hour, and at least half an hour in 99 cases of 100
    assert 50 <= sum(windows_min) / len(windows_min) <= 60
    assert windows_min[len(windows_min) // 100] >= 30
