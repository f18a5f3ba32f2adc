"""The exceptions of jobqueue, one tree whose meaning drives a job's outcome.

::

    JobqueueError
    ├── MalformedJob      an entry that breaks the wire format: dead-lettered at once
    ├── Retry             raised by a handler: retry this job (after ``delay_s``)
    ├── Fatal             raised by a handler: dead-letter now, do not retry
    ├── ConfigError       settings or a JobQueue spec that cannot work
    └── EnqueueUnconfirmed  jobs sent, but not confirmed on enough replicas in time

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


class EnqueueUnconfirmed(JobqueueError):
    """An enqueue that asked for replica acknowledgement did not get it in time (or lost
    its connection on the way): the jobs ``job_ids`` may or may not be in the queue,
    and may not survive a failover. Enqueueing again is safe with an idempotency key."""

    def __init__(self, job_ids: list[str], reason: str) -> None:
        super().__init__(f"{reason}; outcome unknown for {len(job_ids)} job(s)")
        self.job_ids = job_ids
        self.reason = reason

    def only(self, index: int) -> EnqueueUnconfirmed:
        """The same failure, for the job at ``index`` alone (one caller of a batch)."""
        return EnqueueUnconfirmed([self.job_ids[index]], self.reason)
