"""A job's status record read with a plain synchronous redis-py client, wherever it
lives (the same places and precedence as `jobqueue.core.records.read_record`)."""

from __future__ import annotations

from typing import Any

import redis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.records import success_record
from jobqueue.core.status import JobState


def sync_record(client: redis.Redis, job_id: str, keys: QueueKeys | None = None) -> dict[str, Any]:
    """The job's record ({} when Redis knows nothing of it); queued jobs show only
    ``state`` and ``entry_id`` here (the rest is in their entry)."""
    keys = keys or QueueKeys()
    done = keys.done(job_id)
    success = client.hget(done, job_id) if done is not None else None
    own: dict[Any, Any] = client.hgetall(keys.status(job_id))  # type: ignore[assignment]
    if success is not None:
        return {**own, **success_record(str(success))}
    if "state" in own:
        return own
    entry_id = client.hget(keys.queued, job_id)
    if entry_id is not None:
        return {**own, "state": JobState.QUEUED, "entry_id": entry_id}
    return own


def sync_state(client: redis.Redis, job_id: str, keys: QueueKeys | None = None) -> str | None:
    state = sync_record(client, job_id, keys).get("state")
    return None if state is None else str(state)
