"""Every Redis key one queue uses, in one place.

A queue is named by its stream (default ``jobs:work``). Everything else hangs off that
name so two queues on one Redis never collide, and an operator, a producer and a worker
configured with the same stream agree on every key without further settings.

=========================  ==========  =============================================
key                        type        holds
=========================  ==========  =============================================
``{stream}``               stream      jobs ready to run (SPEC §2 fields)
``{dead}``                 stream      dead letters (default ``jobs:dead``)
``{stream}:delayed``       sorted set  ids of delayed jobs and retries; score = due ms
``{stream}:delayed:jobs``  hash        job id -> JSON object of its stream fields
``{stream}:job:{id}``      hash        one job's status record (state, attempts, ...)
``{stream}:idem:{k}``      string      job id enqueued under idempotency key ``k``
=========================  ==========  =============================================
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_STREAM = "jobs:work"
DEFAULT_DEAD_STREAM = "jobs:dead"
DEFAULT_GROUP = "workers"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The Redis keys of one queue."""

    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP
    dead: str = DEFAULT_DEAD_STREAM

    @property
    def delayed(self) -> str:
        """Sorted set of delayed jobs and retries waiting out their backoff."""
        return f"{self.stream}:delayed"

    @property
    def delayed_jobs(self) -> str:
        """Hash from job id to the JSON-encoded stream fields of each delayed job."""
        return f"{self.stream}:delayed:jobs"

    def status(self, job_id: str) -> str:
        """Hash with the status record of one job."""
        return f"{self.stream}:job:{job_id}"

    @property
    def status_prefix(self) -> str:
        """Prefix of every status record; Lua scripts append the job id."""
        return f"{self.stream}:job:"

    def idempotency(self, key: str) -> str:
        """String holding the job id first enqueued under an idempotency key."""
        return f"{self.stream}:idem:{key}"
