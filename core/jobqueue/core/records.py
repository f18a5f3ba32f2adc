"""Reading a job's status record from wherever its current state lives.

A job's status is written where it costs Redis least (docs/internals.md, status
records): a job the client enqueued and that waits in the stream is only an entry in
``{q}:queued`` (job id -> entry id; the rest is in the entry; a job in a priority lane's
stream has the lane's name after its entry id, ``<entry id> <lane>``); a job that started and
succeeded within one worker flush is one field of a shared ``{q}:done:<b>`` hash; every
other state is the job's own hash ``{q}:job:<id>``. `read_record` looks in all three
in one round trip and answers the record as one mapping of the fields of
`jobqueue.core.status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.status import JobState


def success_record(value: str) -> dict[str, str]:
    """The record of a success stored in a ``done`` hash: a JSON array
    ``[finished_at, attempts, entry_id, type, enqueued_at]`` (the worker's FLUSH)."""
    try:
        parts = orjson.loads(value)
    except orjson.JSONDecodeError:
        parts = None
    if not isinstance(parts, list) or len(parts) != 5:
        return {"state": JobState.SUCCEEDED}
    finished_at, attempts, entry_id, job_type, enqueued_at = (str(p) for p in parts)
    return {
        "state": JobState.SUCCEEDED,
        "started_at": finished_at,
        "finished_at": finished_at,
        "updated_at": finished_at,
        "attempts": attempts,
        "entry_id": entry_id,
        "type": job_type,
        "enqueued_at": enqueued_at,
    }


def queued_record(fields: Mapping[str, str]) -> dict[str, str]:
    """The status record of a job waiting in the stream, from its entry's ``fields``."""
    enqueued_at = fields.get("enqueued_at", "")
    return {
        "state": JobState.QUEUED,
        "type": fields.get("type", ""),
        "attempts": fields.get("attempts", "0"),
        "enqueued_at": enqueued_at,
        "updated_at": enqueued_at,
    }


def parse_queued(value: str) -> tuple[str, str]:
    """A value of ``queued``: the entry id and the lane ('' for the queue's own stream)."""
    entry_id, _, lane = value.partition(" ")
    return entry_id, lane


async def read_record(redis: Redis, keys: QueueKeys, job_id: str) -> dict[str, str] | None:
    """The status record of ``job_id``, or None when Redis knows nothing of it."""
    for _ in range(2):  # a job that starts between the two reads is read again
        own, entry_id, success = await _read(redis, keys, job_id)
        if success is not None:
            return {**own, **success_record(success)}
        if "state" in own:
            return own
        if entry_id is None:
            return own or None
        entry_id, lane = parse_queued(entry_id)
        stream = keys.lane(lane) if lane else keys.stream
        rows = cast(list[Any], await redis.xrange(stream, entry_id, entry_id))
        if rows:
            where = {"entry_id": entry_id, **({"lane": lane} if lane else {})}
            return {**queued_record(rows[0][1]), **where, **own}
    return None  # listed as queued, but its entry is gone (deleted by hand)


async def _read(
    redis: Redis, keys: QueueKeys, job_id: str
) -> tuple[dict[str, str], str | None, str | None]:
    """The job's own hash, its entry id in ``queued``, its success record (or None)."""
    done = keys.done(job_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.status(job_id))
        pipe.hget(keys.queued, job_id)
        if done is not None:
            pipe.hget(done, job_id)
        replies: list[Any] = await pipe.execute()
    success = replies[2] if done is not None else None
    return cast(dict[str, str], replies[0]), replies[1], success
