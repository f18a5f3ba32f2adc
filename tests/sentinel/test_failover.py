"""A Sentinel failover under load: worker and producer follow it without a restart.

Real processes on free loopback ports: a primary, a replica, three redis-sentinel
processes, one ``jobqueue worker`` and one ``jobqueue producer``, both given the
``redis+sentinel://`` URL. The primary is SIGKILLed mid-stream (`support.failover_drill`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.failover_drill import run_drill

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
DOWN_AFTER_MS = 2000
"""Longer than the bench's 1000: on a loaded CI machine a promoted master starved of CPU
for a second must not be judged down too (a second failover, to the server just
restarted, would be a different test)."""


def test_with_replicated_enqueue_no_accepted_job_is_lost(tmp_path: Path) -> None:
    result = run_drill(tmp_path, min_replicas=1, before=200, after=200, down_after_ms=DOWN_AFTER_MS)
    print(result.summary())
    assert not result.worker_restarted
    assert not result.producer_restarted
    assert len(result.accepted_after_kill) >= 200  # both kept working after the failover
    assert result.lost == [], f"{len(result.lost)} accepted jobs lost: {result.summary()}"


def test_without_it_both_follow_the_failover_and_jobs_after_it_all_run(tmp_path: Path) -> None:
    result = run_drill(tmp_path, min_replicas=0, before=200, after=200, down_after_ms=DOWN_AFTER_MS)
    # Jobs accepted just before the kill may be lost: the figure is reported, not judged.
    print(result.summary())
    assert not result.worker_restarted
    assert not result.producer_restarted
    assert not set(result.lost) & set(result.accepted_after_kill), result.summary()
    assert result.unconfirmed == []  # without the option nothing waits for replicas
