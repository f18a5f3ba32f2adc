"""Arrival and completion rates of a queue, measured from successive samples.

Both come from counters Redis keeps anyway, so no worker has to report anything:

- arrivals: the growth of the stream's ``entries-added`` (every ``XADD``: new jobs,
  promoted retries and delayed jobs);
- completions: arrivals minus the growth of the backlog (``lag + pending``): what came
  in and is no longer waiting or in flight was acknowledged (or deleted).

Rates are averaged over a sliding window so one fast poll does not swing the policy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from jobqueue.core.backlog import QueueSample
from jobqueue.operator.policy import Sample

RATE_WINDOW_S = 5.0
"""Default averaging window, in seconds."""


@dataclass(frozen=True, slots=True)
class Rates:
    """Jobs per second, over the window that ended at the latest sample."""

    arrival: float = 0.0
    completion: float = 0.0


class RateWindow:
    """Keeps the samples of the last ``window_s`` seconds and turns them into `Rates`."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._points: deque[tuple[float, int, int]] = deque()

    def observe(self, time_s: float, sample: QueueSample) -> Rates:
        """Add a sample taken at ``time_s`` (monotonic seconds); rates up to it."""
        added, backlog = sample.entries_added, sample.backlog
        if self._points and added < self._points[-1][1]:
            # The stream was deleted and recreated: old counters mean nothing now.
            self._points.clear()
        self._points.append((time_s, added, backlog))
        # Keep one point at or before the window's start, so the window is fully spanned.
        while len(self._points) > 2 and self._points[1][0] <= time_s - self.window_s:
            self._points.popleft()
        first_t, first_added, first_backlog = self._points[0]
        elapsed = time_s - first_t
        if elapsed <= 0:
            return Rates()
        arrived = added - first_added
        completed = max(arrived - (backlog - first_backlog), 0)
        return Rates(arrival=arrived / elapsed, completion=completed / elapsed)

    def policy_sample(self, time_s: float, sample: QueueSample, replicas: int) -> Sample:
        """Observe ``sample`` (taken at ``time_s``) and return what the policy decides on:
        its counts, the rates up to it, and the ``replicas`` running now."""
        rates = self.observe(time_s, sample)
        return Sample(
            time_s=time_s,
            lag=sample.lag,
            pending=sample.pending,
            replicas=replicas,
            delayed=sample.delayed,
            arrival_rate=rates.arrival,
            completion_rate=rates.completion,
        )
