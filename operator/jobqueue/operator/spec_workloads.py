"""The spec models of what a JobQueue's workers run as: pod template, disruption budget,
cron schedules (parts of `jobqueue.operator.spec.JobQueueSpec`)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from croniter import croniter
from pydantic import AfterValidator, Field, JsonValue, WithJsonSchema, model_validator

from jobqueue.operator.podschema import pod_template_schema, template_errors, without_nulls
from jobqueue.operator.spec_base import SpecModel, cel


def _valid_template(value: dict[str, Any]) -> dict[str, Any]:
    errors = template_errors(value)
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ValueError("; ".join(errors[:5]) + more)
    cleaned: dict[str, Any] = without_nulls(value)
    return cleaned


PodTemplate = Annotated[
    dict[str, Any], AfterValidator(_valid_template), WithJsonSchema(pod_template_schema())
]
"""A Kubernetes ``PodTemplateSpec`` (a subset of its fields; see `jobqueue.operator.podschema`)."""


_PERCENT = r"(100|0?[0-9]{1,2})%"
"""A percentage as Kubernetes takes one for a PodDisruptionBudget: 1-3 digits, at most 100."""


def _int_or_percent(value: int | str) -> int | str:
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and re.fullmatch(_PERCENT, value):
        return value
    raise ValueError(
        f"want a number of pods (>= 0) or a percentage up to 100% like '25%', got {value!r}"
    )


IntOrPercent = Annotated[
    int | str,
    AfterValidator(_int_or_percent),
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]
"""A number of pods or a percentage of the desired replicas (``"25%"``)."""
_PERCENT_OR_INT = (
    "(type(self.{0}) == int ? self.{0} >= 0 : self.{0}.matches('^(100|0?[0-9]{{1,2}})%$'))"
)


class DisruptionBudgetSpec(SpecModel):
    """A PodDisruptionBudget for the worker pods, so node drains let workers finish jobs."""

    model_config = cel(
        (
            "has(self.minAvailable) != has(self.maxUnavailable)",
            "give minAvailable or maxUnavailable, exactly one",
        ),
        (
            "!has(self.minAvailable) || " + _PERCENT_OR_INT.format("minAvailable"),
            "minAvailable: a number of pods >= 0 or a percentage up to 100% like '25%'",
        ),
        (
            "!has(self.maxUnavailable) || " + _PERCENT_OR_INT.format("maxUnavailable"),
            "maxUnavailable: a number of pods >= 0 or a percentage up to 100% like '25%'",
        ),
    )

    min_available: IntOrPercent | None = None
    """Worker pods that must stay up during a voluntary disruption (a node drain)."""
    max_unavailable: IntOrPercent | None = None
    """Worker pods a voluntary disruption may take down at once (``1`` is a good start)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> DisruptionBudgetSpec:
        if (self.min_available is None) == (self.max_unavailable is None):
            raise ValueError("disruptionBudget: give minAvailable or maxUnavailable, exactly one")
        return self


def _valid_cron(expression: str) -> str:
    five_fields = len(expression.split()) == 5 or expression.startswith("@")
    if not five_fields or not croniter.is_valid(expression):
        raise ValueError(f"not a cron expression: {expression!r}")
    return expression


class ScheduleSpec(SpecModel):
    """A job enqueued on a cron schedule (as Celery beat or BullMQ repeatable jobs)."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    """Name of the schedule, unique in the queue (lowercase letters, digits, ``-``)."""
    cron: Annotated[str, AfterValidator(_valid_cron)] = Field(min_length=1)
    """Cron expression in UTC: five fields (``*/5 * * * *``) or ``@hourly``, ``@daily``..."""
    type: str = Field(min_length=1)
    """Job type to enqueue (the handler's name)."""
    payload: Annotated[
        dict[str, JsonValue],
        WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
    ] = Field(default_factory=dict)
    """The job's payload, a JSON object."""
    priority: int = Field(default=5, ge=1, le=10)
    """Priority of the enqueued job, 1..10."""
    starting_deadline_seconds: int = Field(default=300, ge=1, le=86_400)
    """A tick missed by more than this many seconds (operator down) is skipped."""
