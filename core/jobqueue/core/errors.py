"""The exceptions of jobqueue, one tree whose meaning drives a job's outcome.

::

    JobqueueError
    ├── MalformedJob      an entry that breaks the wire format: dead-lettered at once
    ├── Retry             raised by a handler: retry this job (after ``delay_s``)
    ├── Fatal             raised by a handler: dead-letter now, do not retry
    └── ConfigError       settings or a JobQueue spec that cannot work

Any other exception a handler raises is a failed attempt: it is retried with backoff
until the job's ``max_attempts`` are used up, then dead-lettered.
"""

from __future__ import annotations


class JobqueueError(Exception):
    """Base of every error jobqueue raises on purpose."""


class MalformedJob(JobqueueError):
    """A stream entry that does not follow the wire format (SPEC §2)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Retry(JobqueueError):
    """Ask for another attempt of the current job, after ``delay_s`` seconds.

    With ``delay_s=None`` the job's backoff policy chooses the delay. The attempt still
    counts toward ``max_attempts``.
    """

    def __init__(self, reason: str = "retry requested", delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


class Fatal(JobqueueError):
    """The job can never succeed: dead-letter it now with this reason."""


class ConfigError(JobqueueError):
    """Settings, or a JobQueue spec, that cannot work; the message says why."""
