"""Feeding the operator's scaling policy from local samples, as the operator's loop does.

Each poll turns a `jobqueue.core.backlog.QueueSample` into the policy's `Sample` (with
arrival and completion rates measured over a short window of past samples), calls
`jobqueue.operator.policy.decide`, and keeps the policy's state for the next poll.
Local mode makes no scaling decision of its own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from jobqueue.core.backlog import QueueSample
from jobqueue.operator.policy import Decision, PolicySettings, PolicyState, Sample, decide
from jobqueue.operator.spec import JobQueueSpec

RATE_WINDOW_S = 10.0
"""Rates are averaged over the samples of the last this many seconds."""


@dataclass(frozen=True, slots=True)
class Counters:
    """Monotonic totals of one sample, at one time (seconds, caller's monotonic clock)."""

    time_s: float
    added: int
    """Entries ever added to the stream (``entries-added``: trimming does not lower it)."""
    completed: int
    """Entries added that are no longer waiting or in flight: acknowledged."""


class RateWindow:
    """Arrival and completion rates, in jobs per second, over a sliding time window."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self._window_s = window_s
        self._points: deque[Counters] = deque()

    def add(self, sample: QueueSample, time_s: float) -> None:
        # Whatever was added and is neither waiting (lag) nor delivered-unacked (pending)
        # has been acknowledged: done, retried into the delayed set, or dead-lettered.
        completed = max(0, sample.entries_added - sample.lag - sample.pending)
        point = Counters(time_s, sample.entries_added, completed)
        if self._points and (
            point.added < self._points[-1].added or point.completed < self._points[-1].completed
        ):
            # The stream was deleted or Redis restarted without its data: start over.
            self._points.clear()
        self._points.append(point)
        while len(self._points) > 2 and time_s - self._points[1].time_s >= self._window_s:
            self._points.popleft()

    def rates(self) -> tuple[float, float]:
        """``(arrival, completion)`` in jobs per second; zeros until two samples are in."""
        if len(self._points) < 2:
            return 0.0, 0.0
        first, last = self._points[0], self._points[-1]
        elapsed_s = last.time_s - first.time_s
        if elapsed_s <= 0:
            return 0.0, 0.0
        return (last.added - first.added) / elapsed_s, (
            last.completed - first.completed
        ) / elapsed_s


@dataclass(frozen=True, slots=True)
class Step:
    """One poll's outcome: the policy's decision and the rates it was given."""

    decision: Decision
    arrival_rate: float
    completion_rate: float


class Autoscaler:
    """The operator's policy, fed one sample per poll."""

    def __init__(self, spec: JobQueueSpec) -> None:
        self.settings = PolicySettings.from_spec(spec)
        self._state = PolicyState()
        self._rates = RateWindow()

    def step(self, sample: QueueSample, replicas: int, time_s: float) -> Step:
        """Decide the replicas for ``sample``; ``replicas`` is what was last asked for."""
        self._rates.add(sample, time_s)
        arrival, completion = self._rates.rates()
        policy_sample = Sample(
            time_s=time_s,
            lag=sample.lag,
            pending=sample.pending,
            replicas=replicas,
            delayed=sample.delayed,
            arrival_rate=arrival,
            completion_rate=completion,
        )
        decision = decide(policy_sample, self.settings, self._state)
        self._state = decision.state
        return Step(decision, arrival, completion)
