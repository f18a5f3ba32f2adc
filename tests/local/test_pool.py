"""The local-process backend: worker processes reconciled toward a replica count.

These tests run real child processes (a few lines of Python standing in for a worker,
so the pool's own behaviour is pinned apart from the worker's). The end-to-end tests
in test_dev.py run the real ``jobqueue worker``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobqueue.local.pool import WorkerPool

# Exits 0 on SIGTERM after a short "drain"; writes its argv so tests see its name.
POLITE = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", sys.argv[1], flush=True)
while True:
    time.sleep(0.05)
"""
# Ignores SIGTERM: only SIGKILL stops it.
STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", sys.argv[1], flush=True)
while True:
    time.sleep(0.05)
"""
CRASHING = "import sys; sys.exit(3)"


def python_argv(script: str) -> Callable[[str, int], list[str]]:
    return lambda name, port: [sys.executable, "-c", script, name]


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the deadline")
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent has not reaped it yet).
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def make_pool(tmp_path: Path, events: list[str]) -> Iterator[Callable[..., WorkerPool]]:
    pools: list[WorkerPool] = []

    def make(script: str, grace_period_s: float = 1.0) -> WorkerPool:
        pool = WorkerPool(
            python_argv(script),
            tmp_path / "logs",
            name_prefix="t",
            grace_period_s=grace_period_s,
            on_event=events.append,
            with_http=False,
        )
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.stop()


def test_scaling_up_starts_processes_with_unique_consumer_names(make_pool) -> None:
    pool = make_pool(POLITE)

    pool.reconcile(3)

    assert len(pool.running) == 3
    names = [w.name for w in pool.running]
    assert len(set(names)) == 3
    assert all(pid_alive(w.pid) for w in pool.running)
    wait_for(lambda: all(w.log_path.read_text().startswith("ready ") for w in pool.running))
    assert {w.log_path.read_text().split()[1] for w in pool.running} == set(names)


def test_scaling_down_terminates_the_newest_and_reaps_them(make_pool, events) -> None:
    pool = make_pool(POLITE)
    pool.reconcile(3)
    wait_for(lambda: all(w.log_path.read_text().startswith("ready") for w in pool.running))
    oldest = min(pool.running, key=lambda w: w.started_at_s)
    newest = [w for w in pool.running if w is not oldest]

    pool.reconcile(1)

    assert pool.running == [oldest]
    wait_for(lambda: not any(w.alive for w in newest))
    pool.reconcile(1)
    assert pool.workers == [oldest]
    assert sum("stopped (exit 0)" in e for e in events) == 2


def test_a_worker_killed_is_replaced_on_the_next_reconcile(make_pool, events) -> None:
    pool = make_pool(POLITE)
    pool.reconcile(2)
    victim = pool.running[0]

    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: not victim.alive)
    pool.reconcile(2)

    assert len(pool.running) == 2
    assert victim not in pool.workers
    assert any(f"{victim.name} died (killed by SIGKILL)" in e for e in events)


def test_a_worker_that_ignores_sigterm_is_killed_after_its_grace_period(make_pool) -> None:
    pool = make_pool(STUBBORN, grace_period_s=0.0)
    pool.reconcile(1)
    stubborn = pool.running[0]
    wait_for(lambda: stubborn.log_path.read_text().startswith("ready"))
    pool.reconcile(0)

    # Grace 0 s plus the pool's kill margin: reconcile keeps enforcing it.
    def gone() -> bool:
        pool.reconcile(0)
        return not stubborn.alive

    wait_for(gone, timeout_s=20.0)
    assert stubborn.killed
    assert stubborn.returncode == -signal.SIGKILL


def test_workers_dying_at_start_are_restarted_with_a_growing_delay(make_pool, events) -> None:
    pool = make_pool(CRASHING)
    pool.reconcile(1)
    first = pool.workers[0]
    wait_for(lambda: not first.alive)

    pool.reconcile(1)  # reaps the first crash and restarts at once
    second = pool.workers[0]
    wait_for(lambda: not second.alive)
    pool.reconcile(1)  # reaps the second crash in a row: the restart waits

    assert pool.workers == []
    assert any("died (exit 3)" in e for e in events)
    assert any("next start in 1s" in e for e in events)


def test_stop_leaves_no_process_running(make_pool) -> None:
    pool = make_pool(POLITE)
    pool.reconcile(3)
    pids = [w.pid for w in pool.running]

    pool.stop()

    assert pool.workers == []
    assert not any(pid_alive(pid) for pid in pids)
