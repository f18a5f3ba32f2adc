"""A job's status record: one Redis hash per job, ``{<stream>}:job:<id>`` (`QueueKeys.status`).

The worker and the client write it inside the same atomic steps that move the job
(enqueue, ack + retry, ack + dead-letter, ...), so the record never says something the
streams do not. Every write refreshes the record's TTL (``status_ttl_s``).

Fields, all strings: ``state`` (a `JobState`), ``type``, ``attempts``, ``enqueued_at``,
``started_at``, ``finished_at``, ``updated_at``, ``last_error``, ``entry_id`` (stream
entry id while queued or running), ``run_at`` (due time while delayed or retrying, ISO),
``cancel_requested`` (``1`` once a running job was asked to stop), ``dead_entry_id``
(its entry in the dead-letter stream while dead, so a job id finds its dead letter),
``result`` (the handler's return value as JSON text, once succeeded) or ``result_error``
(why a returned value was not stored), ``lane`` (the priority lane whose stream holds
``entry_id``, when it is not the queue's own stream; see `jobqueue.core.lanes`).
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    """In the stream, not yet delivered to a worker."""
    DELAYED = "delayed"
    """In the delayed set, waiting for its ``run_at``."""
    RUNNING = "running"
    """Delivered to a worker, handler running."""
    RETRYING = "retrying"
    """An attempt failed; waiting out its backoff in the delayed set."""
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    """Dead-lettered: attempts or deliveries exhausted, malformed, or a fatal error."""
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED})
