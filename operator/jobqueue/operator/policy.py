"""The scaling policy: samples of a queue and time in, desired worker replicas out. No I/O.

Interface::

    settings = PolicySettings.from_spec(spec)          # or PolicySettings(...) directly
    state = PolicyState()                              # empty history
    every poll:
        decision = decide(sample, settings, state)     # Sample: what Redis says now
        state = decision.state                         # keep it for the next call
        if decision.replicas != sample.replicas: scale to decision.replicas

`decide` is a pure function: the same sample, settings and state always give the same
`Decision`. All memory between calls lives in `PolicyState` (recent recommendations
within the stabilization window and the start of the current idle spell), which the
caller passes back in. Times are seconds on any monotonic clock the caller chooses.

How replicas are derived, all signals together:

- *backlog* is ``lag + pending``: jobs waiting plus jobs delivered but not yet acked.
- With ``targetBacklogSeconds``: the measured job duration (Little's law,
  ``pending / completion_rate``) gives the worker slots needed to keep up with arrivals
  and drain the lag within the target: ``duration * (arrival_rate + lag / target)``
  slots, ``concurrency`` slots per replica; up to exactly that, down only when fewer
  replicas would be at most `TARGET_UTILIZATION` busy (hysteresis). Before any completion
  is measured (a cold queue) each waiting job asks for one slot.
- With ``lagPerReplica``: ``ceil(backlog / lagPerReplica)``. Both given: the larger.
- Work anywhere (lag, pending, delayed jobs, arrivals) keeps at least one replica, so a
  single job wakes a queue at zero and delayed retries are promoted (workers promote).
- Scale up at once. Scale down only to the highest recommendation of the last
  ``scaleDownStabilizationSeconds`` (like the HPA), so a steady load never flaps.
- Down to zero only after ``idleSecondsBeforeZero`` of complete idleness.
- Rate and concurrency limits (``spec.limits``): when the sample says how many worker
  slots the limits can keep busy (``limit_slots``: per limited type, its concurrency
  limit or its rate times the job duration, whichever is smaller, summed), the load
  never asks for more replicas than fill them, at least one; ``rate_limited`` says
  the limits capped it (a ``RateLimited`` condition and an Event).
- Always clamped to ``[minReplicas, maxReplicas]``; ``limited`` says the max capped it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from jobqueue.operator.spec import JobQueueSpec

RATE_EPSILON = 1e-9
"""Rates at or below this many jobs per second count as zero."""
TARGET_UTILIZATION = 0.9
"""Scale down only to replicas whose slots the measured load fills to at most this share.
The headroom absorbs the noise of measuring duration from integer pending counts, which
would otherwise recommend one replica too few under a steady load, let the backlog grow,
and flap with the stabilization window."""


@dataclass(frozen=True, slots=True)
class Sample:
    """What one poll of Redis saw. Counts are jobs, rates jobs per second."""

    time_s: float
    """When the sample was taken, seconds on the caller's monotonic clock."""
    lag: int
    """Entries in the stream not yet delivered to the group."""
    pending: int
    """Entries delivered to a consumer and not yet acknowledged."""
    replicas: int
    """Worker replicas running (or asked for) now."""
    delayed: int = 0
    """Delayed jobs and retries waiting out a backoff."""
    arrival_rate: float = 0.0
    """Jobs added to the stream per second, recently."""
    completion_rate: float = 0.0
    """Jobs acknowledged per second, recently."""
    limit_slots: float | None = None
    """Worker slots the queue's limits can keep busy, when all its waiting work is of
    limited types (`limit_slots`); None: the limits bound nothing."""


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """The scaling knobs, from ``spec.scaling`` and the worker's concurrency."""

    min_replicas: int = 0
    max_replicas: int = 10
    target_backlog_s: float | None = 30.0
    lag_per_replica: int | None = None
    concurrency: int = 10
    """Jobs one replica runs at once."""
    scale_down_stabilization_s: float = 60.0
    idle_s_before_zero: float = 300.0

    @classmethod
    def from_spec(cls, spec: JobQueueSpec) -> PolicySettings:
        scaling = spec.scaling
        return cls(
            min_replicas=scaling.min_replicas,
            max_replicas=scaling.max_replicas,
            target_backlog_s=scaling.effective_target_backlog_s,
            lag_per_replica=scaling.lag_per_replica,
            concurrency=spec.worker.concurrency,
            scale_down_stabilization_s=scaling.scale_down_stabilization_seconds,
            idle_s_before_zero=scaling.idle_seconds_before_zero,
        )


@dataclass(frozen=True, slots=True)
class PolicyState:
    """What `decide` remembers between calls; pass back ``decision.state``."""

    recommendations: tuple[tuple[float, int], ...] = ()
    """``(time_s, replicas)`` recommended within the stabilization window, oldest first."""
    first_time_s: float | None = None
    """Time of the first sample seen: the history is complete once it is a window old."""
    idle_since_s: float | None = None
    """Start of the current spell with no work at all, or None when busy."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer for one sample."""

    replicas: int
    """Desired replicas, within bounds."""
    reason: str
    """Why, in one line, for Events and logs."""
    recommended: int
    """Replicas the load asks for now, before stabilization (within bounds)."""
    limited: bool
    """True when the load asks for more than ``max_replicas``."""
    current: int
    """Replicas the sample saw."""
    state: PolicyState = field(repr=False)
    rate_limited: bool = False
    """True when the load asks for more replicas than the limits can keep busy."""

    @property
    def direction(self) -> Literal["up", "down", "none"]:
        """``up``/``down`` when `replicas` differs from `current`, else ``none``."""
        if self.replicas > self.current:
            return "up"
        return "down" if self.replicas < self.current else "none"


def is_idle(sample: Sample) -> bool:
    """No job waiting, running, delayed or arriving."""
    return (
        sample.lag == 0
        and sample.pending == 0
        and sample.delayed == 0
        and sample.arrival_rate <= RATE_EPSILON
    )


def load_replicas(sample: Sample, settings: PolicySettings) -> tuple[int, str]:
    """Replicas the load asks for (unbounded) and how that was worked out."""
    backlog = sample.lag + sample.pending
    demands: list[tuple[int, str]] = []
    if settings.target_backlog_s is not None:
        demands.append(_by_backlog_time(sample, settings, settings.target_backlog_s))
    if settings.lag_per_replica is not None:
        wanted = math.ceil(backlog / settings.lag_per_replica)
        demands.append((wanted, f"backlog {backlog} at {settings.lag_per_replica}/replica"))
    wanted, why = max(demands, key=lambda d: d[0]) if demands else (0, "no target")
    if wanted == 0 and not is_idle(sample):
        return 1, f"{why}; jobs waiting, running, delayed or arriving keep one replica"
    return wanted, why


def _by_backlog_time(sample: Sample, settings: PolicySettings, target_s: float) -> tuple[int, str]:
    if sample.completion_rate > RATE_EPSILON and sample.pending > 0:
        duration_s = sample.pending / sample.completion_rate
        slots = duration_s * (sample.arrival_rate + sample.lag / target_s)
        # Hysteresis: go up to exactly what the slots need, come down only to what they
        # need with headroom; in between, stay.
        least = math.ceil(slots / settings.concurrency - 1e-9)
        roomy = math.ceil(slots / (settings.concurrency * TARGET_UTILIZATION) - 1e-9)
        wanted = min(max(sample.replicas, least), roomy)
        return wanted, (
            f"lag {sample.lag}, pending {sample.pending}, {duration_s:.2f} s/job, "
            f"arrivals {sample.arrival_rate:.1f}/s: {slots:.1f} slots to drain in {target_s:g} s"
        )
    # No duration measured yet (cold queue or jobs too short to be seen in flight):
    # every outstanding job asks for a slot; the measured rate corrects it later.
    backlog = sample.lag + sample.pending
    wanted = math.ceil(backlog / settings.concurrency)
    return wanted, f"backlog {backlog}, no duration measured yet: one slot per job"


def decide(sample: Sample, settings: PolicySettings, state: PolicyState) -> Decision:
    """Desired replicas for ``sample``, given the history in ``state`` (see module doc)."""
    now = sample.time_s
    idle = is_idle(sample)
    idle_since = (state.idle_since_s if state.idle_since_s is not None else now) if idle else None
    first_time = state.first_time_s if state.first_time_s is not None else now

    wanted, why = load_replicas(sample, settings)
    wanted, why, rate_limited = _within_limits(sample, settings, wanted, why)
    if idle:
        idle_for = now - (idle_since if idle_since is not None else now)
        if sample.replicas == 0 or idle_for >= settings.idle_s_before_zero:
            wanted, why = 0, f"idle for {idle_for:.0f} s"
        else:
            wanted, why = 1, f"idle for {idle_for:.0f} s of {settings.idle_s_before_zero:g} s"
    recommended = min(max(wanted, settings.min_replicas), settings.max_replicas)
    limited = wanted > settings.max_replicas

    window_start = now - settings.scale_down_stabilization_s
    history = tuple((t, r) for t, r in state.recommendations if t > window_start)
    history += ((now, recommended),)
    if idle and wanted == 0:
        # A whole idle spell is its own stabilization: nothing to drain, nothing coming.
        replicas, reason = recommended, why
    else:
        replicas, reason = _stabilize(sample, settings, recommended, history, first_time, why)
    if limited:
        reason += f"; capped at maxReplicas {settings.max_replicas}"
    new_state = PolicyState(history, first_time_s=first_time, idle_since_s=idle_since)
    return Decision(
        replicas=replicas,
        reason=reason,
        recommended=recommended,
        limited=limited,
        current=sample.replicas,
        state=new_state,
        rate_limited=rate_limited,
    )


def limit_cap(sample: Sample, settings: PolicySettings) -> int | None:
    """The most replicas the limits can keep busy (at least 1), or None if unbounded."""
    if sample.limit_slots is None:
        return None
    return max(1, math.ceil(sample.limit_slots / settings.concurrency - 1e-9))


def _within_limits(
    sample: Sample, settings: PolicySettings, wanted: int, why: str
) -> tuple[int, str, bool]:
    cap = limit_cap(sample, settings)
    if cap is None or wanted <= cap:
        return wanted, why, False
    slots = sample.limit_slots
    return cap, f"{why}; the limits keep at most {slots:.1f} slots busy: {cap} replicas", True


def limit_slots(limits: tuple[tuple[float, int], ...], duration_s: float | None) -> float | None:
    """Worker slots a queue's limits can keep busy: per limited type ``(rate_per_s,
    concurrency)`` (0 for none), its concurrency or its rate times the job duration
    (Little's law), whichever is smaller, summed. None when a type has only a rate and
    no duration is measured yet, or there are no limits."""
    if not limits:
        return None
    total = 0.0
    for rate_per_s, concurrency in limits:
        bounds = [float(concurrency)] if concurrency else []
        if rate_per_s:
            if duration_s is None:
                if not bounds:
                    return None
            else:
                bounds.append(rate_per_s * duration_s)
        total += min(bounds)
    return total


def _stabilize(
    sample: Sample,
    settings: PolicySettings,
    recommended: int,
    history: tuple[tuple[float, int], ...],
    first_time_s: float,
    why: str,
) -> tuple[int, str]:
    # Replicas above a (lowered) maxReplicas are never held: the bound wins at once.
    current = min(sample.replicas, settings.max_replicas)
    if recommended >= current:
        return recommended, why
    highest = max(r for _, r in history)
    # Until the history spans a whole window (operator just started), the current
    # replicas stand in for the recommendations we never saw.
    if sample.time_s - first_time_s < settings.scale_down_stabilization_s:
        highest = max(highest, current)
    if highest >= current:
        return current, (
            f"{why}: wants {recommended}, holding {current} "
            f"for the {settings.scale_down_stabilization_s:g} s stabilization window"
        )
    return highest, f"{why}: down to the window's highest recommendation {highest}"


def spec_limit_slots(spec: JobQueueSpec, sample: Sample) -> float | None:
    """`limit_slots` of ``spec.limits`` with the job duration ``sample`` measures
    (``pending / completion_rate``; none before a completion is seen)."""
    duration_s = None
    if sample.completion_rate > RATE_EPSILON and sample.pending > 0:
        duration_s = sample.pending / sample.completion_rate
    return limit_slots(tuple((x.rate_per_s, x.concurrency) for x in spec.type_limits), duration_s)
