"""``spec.limits`` of a JobQueue: rate and concurrency limits per job type.

Each entry names a job ``type`` and at least one of ``rate`` (at most ``jobs`` started
per ``periodSeconds``) and ``concurrency`` (at most that many running at once), both
across every worker pod of the queue. The operator passes them to the worker pods as
``JOBQUEUE_RATE_LIMITS`` and ``JOBQUEUE_CONCURRENCY_LIMITS`` (`jobqueue.core.limits`),
local mode to its worker processes the same way, and the scaling policy reads them.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from jobqueue.core.limits import TypeLimit
from jobqueue.operator.spec_base import SpecModel, cel


class RateSpec(SpecModel):
    """At most ``jobs`` started per ``periodSeconds`` (smoothed: one per period/jobs)."""

    jobs: int = Field(ge=1, le=1_000_000)
    period_seconds: float = Field(default=1.0, ge=0.001, le=86_400)


class LimitSpec(SpecModel):
    """The limits of one job type, shared by every worker pod of the queue."""

    model_config = cel(
        ("has(self.rate) || has(self.concurrency)", "a limit needs rate or concurrency"),
    )

    type: str = Field(min_length=1, max_length=200, pattern=r"^[^\s=,/]+$")
    """The job type (the handler name) these limits apply to."""
    rate: RateSpec | None = None
    concurrency: int | None = Field(default=None, ge=1, le=1_000_000)
    """At most this many jobs of the type running at once."""

    @model_validator(mode="after")
    def _some_limit(self) -> LimitSpec:
        if self.rate is None and self.concurrency is None:
            raise ValueError(f"limit of type {self.type!r} needs rate or concurrency")
        return self

    def type_limit(self) -> TypeLimit:
        """This entry as the worker's `TypeLimit`."""
        rate = self.rate
        return TypeLimit(
            self.type,
            rate_jobs=rate.jobs if rate else 0,
            rate_period_s=rate.period_seconds if rate else 0.0,
            concurrency=self.concurrency or 0,
        )
