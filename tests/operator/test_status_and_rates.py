"""Status writes are rationed; rates come from Redis counters."""

from __future__ import annotations

from jobqueue.core.backlog import QueueSample
from jobqueue.operator.rates import RateWindow
from jobqueue.operator.status import StatusBook


def queue(added: int, lag: int, pending: int) -> QueueSample:
    return QueueSample(
        stream="s",
        group="g",
        length=lag + pending,
        entries_added=added,
        lag=lag,
        pending=pending,
        delayed=0,
        dead_letters=0,
        lag_source="group",
    )


def test_rates_count_arrivals_and_what_left_the_backlog() -> None:
    window = RateWindow(window_s=10)
    window.observe(0.0, queue(added=100, lag=50, pending=10))
    # 2 s later: 40 more arrived, backlog went from 60 to 40, so 60 finished
    rates = window.observe(2.0, queue(added=140, lag=30, pending=10))
    assert (rates.arrival, rates.completion) == (20.0, 30.0)


def test_a_recreated_stream_resets_the_rates_instead_of_going_negative() -> None:
    window = RateWindow(window_s=10)
    window.observe(0.0, queue(added=1000, lag=0, pending=0))
    rates = window.observe(1.0, queue(added=3, lag=3, pending=0))
    assert (rates.arrival, rates.completion) == (0.0, 0.0)


def test_old_samples_leave_the_window() -> None:
    window = RateWindow(window_s=2)
    window.observe(0.0, queue(added=0, lag=0, pending=0))
    window.observe(1.0, queue(added=100, lag=0, pending=0))
    window.observe(5.0, queue(added=100, lag=0, pending=0))
    rates = window.observe(6.0, queue(added=100, lag=0, pending=0))
    assert rates.arrival == 0.0


def test_counts_alone_are_written_at_most_once_per_interval() -> None:
    book = StatusBook()
    book.update(lag=1, replicas=1)
    book.set_condition("Ready", True, "Scaling")
    first = book.pending_patch(now_s=0.0, interval_s=5.0)
    assert first is not None
    book.written(first, 0.0)
    book.update(lag=2)
    assert book.pending_patch(now_s=1.0, interval_s=5.0) is None
    assert book.pending_patch(now_s=5.0, interval_s=5.0) is not None


def test_replicas_and_conditions_are_written_at_once() -> None:
    book = StatusBook()
    book.update(lag=1, replicas=1)
    book.written(book.current(), 0.0)
    book.update(replicas=2)
    assert book.pending_patch(now_s=0.1, interval_s=5.0) is not None
    book.written(book.current(), 0.1)
    assert book.set_condition("RedisReachable", False, "RedisUnreachable", "refused")
    assert book.pending_patch(now_s=0.2, interval_s=5.0) is not None


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    book = StatusBook()
    book.set_condition("Ready", False, "RedisUnreachable", "a")
    since = book.conditions["Ready"]["lastTransitionTime"]
    assert not book.set_condition("Ready", False, "RedisUnreachable", "b")
    assert book.conditions["Ready"]["lastTransitionTime"] == since
