"""Per-type limits of a queue: "at most N started per period" and "at most N running".

Written as text in the environment (the operator passes a JobQueue's ``spec.limits`` to
its worker pods this way), parsed here for every component:

- ``JOBQUEUE_RATE_LIMITS``: ``type=JOBS/PERIOD`` pairs separated by commas, the period
  a number with a unit ``ms``, ``s``, ``m`` or ``h`` (``email=50/1s,report=10/1m``);
- ``JOBQUEUE_CONCURRENCY_LIMITS``: ``type=N`` pairs (``report=3``).

A rate limit is smoothed: ``N/PERIOD`` lets one job start every ``PERIOD/N`` (a burst
allowance would put more than N starts in some window of ``PERIOD``), plus a guard of
``START_GUARD_MS`` shared out over the N starts: a handler starting a few milliseconds
after its permit (the event loop, a thread switch, another process) must not put N + 1
starts in one window either; a job that would start later than that asks again. So
``50/1s`` starts one job every 21 ms (47.6 a second).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from jobqueue.core.errors import ConfigError

PERIOD_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
START_GUARD_MS = 50
"""The most a start may run late without breaking "N per period", ms (at most 5 % of the
period)."""
_RATE = re.compile(r"^(\d+)/(\d+(?:\.\d+)?)(ms|s|m|h)$")
_TYPE = re.compile(r"^[^\s=,/]+$")


@dataclass(frozen=True, slots=True)
class TypeLimit:
    """The limits of one job type; a field at 0 means no such limit."""

    type: str
    rate_jobs: int = 0
    """Most jobs started per ``rate_period_s`` across every worker of the queue."""
    rate_period_s: float = 0.0
    concurrency: int = 0
    """Most jobs of this type running at once across every worker of the queue."""

    @property
    def interval_ms(self) -> float:
        """Milliseconds between two starts under the rate limit (0: no rate limit), with
        a fraction: ``5000/1s`` starts one job every 0.21 ms, not one a millisecond."""
        if not self.rate_jobs:
            return 0.0
        return (self.rate_period_s * 1000 + self.guard_ms) / self.rate_jobs

    @property
    def guard_ms(self) -> float:
        """How late a start may be and still count as on time, ms (`START_GUARD_MS`)."""
        return min(START_GUARD_MS, self.rate_period_s * 1000 * 0.05)

    @property
    def rate_per_s(self) -> float:
        """The rate limit in jobs per second (0.0: none)."""
        return self.rate_jobs / self.rate_period_s if self.rate_jobs else 0.0


def _pairs(text: str, name: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        job_type, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not _TYPE.match(job_type):
            raise ConfigError(f"{name}: {item!r} is not TYPE=VALUE")
        if job_type in seen:
            raise ConfigError(f"{name}: type {job_type!r} is given twice")
        seen.add(job_type)
        pairs.append((job_type, value))
    return pairs


def parse_rate_limits(text: str, name: str = "JOBQUEUE_RATE_LIMITS") -> dict[str, TypeLimit]:
    """``email=50/1s,report=10/1m`` as limits by type; ConfigError naming ``name``."""
    limits: dict[str, TypeLimit] = {}
    for job_type, value in _pairs(text, name):
        match = _RATE.match(value.replace(" ", ""))
        if match is None:
            raise ConfigError(f"{name}: {job_type}={value!r} is not JOBS/PERIOD like 50/1s")
        jobs, period_s = int(match[1]), float(match[2]) * PERIOD_UNITS_S[match[3]]
        if jobs < 1 or period_s <= 0:
            raise ConfigError(f"{name}: {job_type}={value!r} must allow at least 1 job")
        limits[job_type] = TypeLimit(job_type, rate_jobs=jobs, rate_period_s=period_s)
    return limits


def parse_concurrency_limits(
    text: str, name: str = "JOBQUEUE_CONCURRENCY_LIMITS"
) -> dict[str, int]:
    """``report=3`` as the most jobs running at once by type; ConfigError naming ``name``."""
    limits: dict[str, int] = {}
    for job_type, value in _pairs(text, name):
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"{name}: {job_type}={value!r} must be a positive integer")
        limits[job_type] = int(value)
    return limits


def combine(rates: dict[str, TypeLimit], concurrency: dict[str, int]) -> tuple[TypeLimit, ...]:
    """One `TypeLimit` per type named in either, sorted by type."""
    limits: list[TypeLimit] = []
    for job_type in sorted({*rates, *concurrency}):
        rate = rates.get(job_type, TypeLimit(job_type))
        limits.append(
            TypeLimit(job_type, rate.rate_jobs, rate.rate_period_s, concurrency.get(job_type, 0))
        )
    return tuple(limits)


def with_text(
    limits: tuple[TypeLimit, ...], rates_text: str | None, concurrency_text: str | None
) -> tuple[TypeLimit, ...]:
    """``limits`` with its rate limits replaced by ``rates_text`` and its concurrency
    limits by ``concurrency_text``, each when given (the worker's flags over its env)."""
    rates = {x.type: x for x in limits if x.rate_jobs}
    concurrency = {x.type: x.concurrency for x in limits if x.concurrency}
    if rates_text is not None:
        rates = parse_rate_limits(rates_text, "--rate-limits")
    if concurrency_text is not None:
        concurrency = parse_concurrency_limits(concurrency_text, "--concurrency-limits")
    return combine(rates, concurrency)


def format_period(period_s: float) -> str:
    """A period as the text `parse_rate_limits` reads (``60`` -> ``60s``)."""
    return f"{period_s:g}s" if period_s >= 1 else f"{round(period_s * 1000)}ms"


def to_env(limits: Iterable[TypeLimit]) -> dict[str, str]:
    """The two environment variables that give a worker ``limits`` (empty when none)."""
    limits = list(limits)
    rates = [
        f"{x.type}={x.rate_jobs}/{format_period(x.rate_period_s)}" for x in limits if x.rate_jobs
    ]
    conc = [f"{x.type}={x.concurrency}" for x in limits if x.concurrency]
    env: dict[str, str] = {}
    if rates:
        env["JOBQUEUE_RATE_LIMITS"] = ",".join(rates)
    if conc:
        env["JOBQUEUE_CONCURRENCY_LIMITS"] = ",".join(conc)
    return env
