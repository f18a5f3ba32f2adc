"""The scaling policy: a pure function of samples, settings and time."""

from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jobqueue.operator.policy import (
    TARGET_UTILIZATION,
    Decision,
    PolicySettings,
    PolicyState,
    Sample,
    decide,
    limit_slots,
    load_replicas,
)

SETTINGS = PolicySettings(
    min_replicas=0,
    max_replicas=8,
    target_backlog_s=10.0,
    concurrency=4,
    scale_down_stabilization_s=30.0,
    idle_s_before_zero=60.0,
)


def run(
    loads: list[tuple[int, int, float, float]],
    policy: PolicySettings = SETTINGS,
    start_replicas: int = 0,
    step_s: float = 1.0,
) -> list[Decision]:
    """Feed (lag, pending, arrival_rate, completion_rate) per poll, applying each decision."""
    state, replicas, decisions = PolicyState(), start_replicas, []
    for i, (lag, pending, arrival, completion) in enumerate(loads):
        sample = Sample(
            time_s=i * step_s,
            lag=lag,
            pending=pending,
            replicas=replicas,
            arrival_rate=arrival,
            completion_rate=completion,
        )
        decision = decide(sample, policy, state)
        state, replicas = decision.state, decision.replicas
        decisions.append(decision)
    return decisions


def test_a_single_job_wakes_a_queue_at_zero() -> None:
    [first] = run([(1, 0, 0.0, 0.0)])
    assert (first.replicas, first.direction) == (1, "up")


def test_a_delayed_retry_keeps_one_worker_to_promote_it() -> None:
    sample = Sample(time_s=0, lag=0, pending=0, delayed=1, replicas=0)
    assert decide(sample, SETTINGS, PolicyState()).replicas == 1


def test_a_burst_scales_up_at_once_and_is_capped_with_a_reason() -> None:
    [_, burst] = run([(0, 0, 0, 0), (1000, 0, 0, 0)], start_replicas=1)
    assert burst.replicas == SETTINGS.max_replicas
    assert burst.limited
    assert "capped at maxReplicas 8" in burst.reason


def test_scale_down_waits_for_the_stabilization_window() -> None:
    # Given 8 busy replicas, then a load that needs 1 (3 in flight at 1 s/job)
    busy = [(200, 32, 20.0, 32.0)] * 3
    light = [(0, 3, 3.0, 3.0)] * 40
    decisions = run(busy + light, start_replicas=8)
    first_down = next(i for i, d in enumerate(decisions) if d.direction == "down")
    # Then nothing goes down before the window has passed since the last high recommendation
    assert first_down - 2 >= SETTINGS.scale_down_stabilization_s
    assert decisions[-1].replicas == 1


def test_idle_queue_goes_to_zero_only_after_the_idle_time() -> None:
    decisions = run([(0, 0, 0.0, 0.0)] * 70, start_replicas=1)
    zero_at = next(i for i, d in enumerate(decisions) if d.replicas == 0)
    assert zero_at == SETTINGS.idle_s_before_zero


def test_min_replicas_holds_even_when_idle() -> None:
    policy = PolicySettings(min_replicas=2, max_replicas=5, idle_s_before_zero=0)
    decisions = run([(0, 0, 0.0, 0.0)] * 5, policy=policy, start_replicas=0)
    assert {d.replicas for d in decisions} == {2}


def test_lag_per_replica_target_like_keda() -> None:
    policy = PolicySettings(target_backlog_s=None, lag_per_replica=10, max_replicas=20)
    [decision] = run([(95, 0, 0.0, 0.0)], policy=policy)
    assert decision.replicas == 10


def test_measured_duration_drives_the_backlog_target() -> None:
    # 8 in flight finishing at 8/s: 1 s per job; 40 waiting to drain in 10 s plus 4/s
    # arriving needs 1 * (4 + 40/10) = 8 slots = 2 replicas of concurrency 4
    [decision] = run([(40, 8, 4.0, 8.0)], start_replicas=2)
    assert decision.recommended == 2
    assert "1.00 s/job" in decision.reason


loads = st.tuples(
    st.integers(0, 5000),
    st.integers(0, 200),
    st.floats(0, 500, allow_nan=False),
    st.floats(0, 500, allow_nan=False),
)
policies = st.builds(
    lambda lo, span, target, per, conc, stab, idle: PolicySettings(
        min_replicas=lo,
        max_replicas=lo + span,
        target_backlog_s=target,
        lag_per_replica=per,
        concurrency=conc,
        scale_down_stabilization_s=stab,
        idle_s_before_zero=idle,
    ),
    st.integers(0, 5),
    st.integers(1, 50),
    st.one_of(st.none(), st.floats(0.5, 600)),
    st.one_of(st.none(), st.integers(1, 1000)),
    st.integers(1, 100),
    st.floats(0, 120),
    st.floats(0, 600),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(loads, min_size=1, max_size=60), policies, st.integers(0, 60))
def test_property_replicas_always_within_bounds(
    sequence: list[tuple[int, int, float, float]], policy: PolicySettings, start: int
) -> None:
    for decision in run(sequence, policy=policy, start_replicas=start):
        assert policy.min_replicas <= decision.replicas <= policy.max_replicas


@settings(max_examples=200, deadline=None)
@given(loads, policies, st.integers(0, 60))
def test_property_constant_load_never_flaps(
    load: tuple[int, int, float, float], policy: PolicySettings, start: int
) -> None:
    # Under a constant load the replicas move in at most one direction, then settle.
    decisions = run([load] * 200, policy=policy, start_replicas=start)
    directions = {d.direction for d in decisions} - {"none"}
    assert len(directions) <= 1
    assert decisions[-1].replicas == decisions[-2].replicas


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.integers(0, 200),
    st.floats(0, 500),
    st.floats(0, 500),
    st.integers(0, 60),
    policies,
)
def test_property_monotone_in_backlog(
    lag_a: int,
    lag_b: int,
    pending: int,
    arrival: float,
    completion: float,
    replicas: int,
    policy: PolicySettings,
) -> None:
    low, high = sorted((lag_a, lag_b))

    def desired(lag: int) -> int:
        sample = Sample(0.0, lag, pending, replicas, 0, arrival, completion)
        return decide(sample, policy, PolicyState()).replicas

    assert desired(low) <= desired(high)


def simulate(arrival_per_s: float, job_s: float, seconds: int = 600) -> list[int]:
    """A closed loop: the policy's replicas work the queue, the queue feeds the policy.

    Each replica runs ``SETTINGS.concurrency`` jobs of ``job_s`` seconds; ``arrival_per_s``
    jobs arrive every second. Rates are measured as the operator does (5 s window).
    """
    state, replicas, lag, added = PolicyState(), 0, 0.0, 0.0
    history: list[tuple[float, float, float]] = []
    trace = []
    for t in range(seconds):
        lag += arrival_per_s
        added += arrival_per_s
        done = min(lag, replicas * SETTINGS.concurrency / job_s)
        lag -= done
        in_flight = min(replicas * SETTINGS.concurrency, done * job_s)
        history = [h for h in history if h[0] >= t - 5] + [(t, added, lag + in_flight)]
        t0, added0, backlog0 = history[0]
        elapsed = max(t - t0, 1e-9)
        arrival = (added - added0) / elapsed
        completion = max(added - added0 - (lag + in_flight - backlog0), 0) / elapsed
        sample = Sample(t, int(lag), int(in_flight), replicas, 0, arrival, completion)
        decision = decide(sample, SETTINGS_SIM, state)
        state, replicas = decision.state, decision.replicas
        trace.append(replicas)
    return trace


SETTINGS_SIM = PolicySettings(
    min_replicas=0,
    max_replicas=50,
    target_backlog_s=10.0,
    concurrency=4,
    scale_down_stabilization_s=30.0,
    idle_s_before_zero=60.0,
)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.5, 150), st.floats(0.05, 4.0))
def test_property_steady_arrivals_converge_to_enough_replicas_and_stay(
    arrival_per_s: float, job_s: float
) -> None:
    needed = arrival_per_s * job_s / SETTINGS_SIM.concurrency  # replicas busy all the time
    assume(needed < SETTINGS_SIM.max_replicas - 1)  # the bounds are pinned elsewhere
    trace = simulate(arrival_per_s, job_s)
    tail = trace[-200:]
    assert len(set(tail)) == 1, "still changing after 400 s of the same load"
    assert tail[0] >= needed, "settled below the capacity the load needs"
    roomy = math.ceil(needed / TARGET_UTILIZATION)
    assert tail[0] <= roomy + 1, "settled far above what the load needs, headroom included"


def test_a_rate_limit_caps_the_replicas_it_can_keep_busy() -> None:
    # 10 jobs/s of 2 s jobs keep 20 slots busy: 2 replicas of concurrency 10, whatever
    # the backlog asks for.
    policy = PolicySettings(max_replicas=50, concurrency=10)
    slots = limit_slots(((10.0, 0),), duration_s=2.0)
    assert slots == 20.0
    sample = Sample(0.0, lag=100_000, pending=0, replicas=1, limit_slots=slots)
    decision = decide(sample, policy, PolicyState())
    assert (decision.replicas, decision.rate_limited, decision.limited) == (2, True, False)
    assert "the limits keep at most 20.0 slots busy" in decision.reason


def test_limit_slots_take_the_smaller_bound_of_each_type_and_add_them() -> None:
    assert limit_slots(((10.0, 5),), 2.0) == 5.0  # the concurrency binds
    assert limit_slots(((1.0, 5),), 2.0) == 2.0  # the rate binds
    assert limit_slots(((1.0, 0), (0.0, 3)), 2.0) == 5.0
    assert limit_slots(((1.0, 0),), None) is None  # no duration yet: no bound
    assert limit_slots(((1.0, 4),), None) == 4.0
    assert limit_slots((), 2.0) is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(loads, min_size=1, max_size=40),
    policies,
    st.integers(0, 60),
    st.floats(0, 400, allow_nan=False),
)
def test_property_never_more_replicas_than_the_limits_keep_busy(
    sequence: list[tuple[int, int, float, float]],
    policy: PolicySettings,
    start: int,
    slots: float,
) -> None:
    cap = max(1, math.ceil(slots / policy.concurrency - 1e-9))
    state, replicas = PolicyState(), start
    for i, (lag, pending, arrival, completion) in enumerate(sequence):
        sample = Sample(i * 1.0, lag, pending, replicas, 0, arrival, completion, slots)
        decision = decide(sample, policy, state)
        state = decision.state
        # the load never asks for more than the cap (the minimum may still)
        assert decision.recommended <= max(cap, policy.min_replicas)
        # scaling up never goes past the cap; scaling down may hold for stabilization
        if decision.direction == "up":
            assert decision.replicas <= max(cap, policy.min_replicas)
        # and the decision says so exactly when the load asked for more
        assert decision.rate_limited == (load_replicas(sample, policy)[0] > cap)
        replicas = decision.replicas
