"""Feeding the operator's scaling policy from local samples, as the operator's loop does.

Each poll turns a `jobqueue.core.backlog.QueueSample` into the policy's `Sample` (with
arrival and completion rates from the operator's `RateWindow`), calls
`jobqueue.operator.policy.decide`, and keeps the policy's state for the next poll.
Local mode makes no scaling decision, and measures no rate, of its own. With
``spec.limits``, the sample carries the slots the limits keep busy when the session saw
only limited types waiting (`jobqueue.operator.limit_usage`), as the operator's does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from jobqueue.core.backlog import QueueSample
from jobqueue.operator.policy import (
    Decision,
    PolicySettings,
    PolicyState,
    decide,
    spec_limit_slots,
)
from jobqueue.operator.rates import RateWindow
from jobqueue.operator.spec import JobQueueSpec


@dataclass(frozen=True, slots=True)
class Step:
    """One poll's outcome: the policy's decision and the rates it was given."""

    decision: Decision
    arrival_rate: float
    completion_rate: float


class Autoscaler:
    """The operator's policy, fed one sample per poll."""

    def __init__(self, spec: JobQueueSpec) -> None:
        self.spec = spec
        self.settings = PolicySettings.from_spec(spec)
        self._state = PolicyState()
        self._rates = RateWindow()

    def step(
        self, sample: QueueSample, replicas: int, time_s: float, *, only_limited: bool = False
    ) -> Step:
        """Decide the replicas for ``sample``; ``replicas`` is what was last asked for;
        ``only_limited``: every waiting job is of a type ``spec.limits`` limits."""
        policy_sample = self._rates.policy_sample(time_s, sample, replicas)
        if only_limited:
            slots = spec_limit_slots(self.spec, policy_sample)
            policy_sample = dataclasses.replace(policy_sample, limit_slots=slots)
        decision = decide(policy_sample, self.settings, self._state)
        self._state = decision.state
        return Step(decision, policy_sample.arrival_rate, policy_sample.completion_rate)
