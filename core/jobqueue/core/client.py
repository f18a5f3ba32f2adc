"""The Python client: enqueue, read status, cancel and replay, straight against Redis.

`AsyncClient` is the implementation; `Client` is the same API for synchronous code
(it runs the async client on a private event loop). Both write exactly the wire format
of SPEC §2 (`jobqueue.core.wire.Job.fields`), so a job enqueued here and one posted to
the HTTP API are indistinguishable. Every change is one atomic Lua step that also
writes the job's status record (`jobqueue.core.scripts`).

    async with AsyncClient.from_url("redis://localhost:6379/0") as client:
        job = await client.enqueue("email", {"to": "a@example.com", "template": "hi"})
        info = await client.get(job.job_id)
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import time
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from jobqueue.core import scripts
from jobqueue.core.backlog import QueueSample, sample_queue
from jobqueue.core.client_types import (
    CancelOutcome,
    DeadLetter,
    DeadPage,
    Enqueued,
    EnqueueExpired,
    InvalidNewJob,
    JobInfo,
    NewJob,
    enqueue_arg,
)
from jobqueue.core.connection import REDIS_UNAVAILABLE, async_redis
from jobqueue.core.errors import EnqueueUnconfirmed
from jobqueue.core.records import read_record
from jobqueue.core.replication import enqueue_replicated
from jobqueue.core.settings import QueueSettings
from jobqueue.core.waiting import wait_settled
from jobqueue.core.wire import replay_fields, utc_now_iso

T = TypeVar("T")

DEFAULT_IDEMPOTENCY_TTL_S = 24 * 3600
JOBS_PER_SCRIPT_CALL = 500
"""Bounds how long one script call holds Redis; bigger batches become several calls
inside one MULTI, still one round trip."""
_Prepared = tuple[str, bytes, list[str], bool]
"""A job's id, enqueue script argument, keys, and whether its id was the caller's."""
"""One job ready for the enqueue script: its id, its argument, the keys it touches."""
ENQUEUE_RETRIES = 3
"""Times an enqueue whose reply was lost is sent again, with the same job ids (so never
written twice), before its caller hears the connection error."""
ENTRY_ID = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")
EXPIRED = "expired"
"""The state the enqueue script answers for a job it did not write past ``not_after_ms``."""

__all__ = [
    "AsyncClient",
    "CancelOutcome",
    "Client",
    "DeadLetter",
    "DeadPage",
    "EnqueueExpired",
    "Enqueued",
    "InvalidNewJob",
    "JobInfo",
    "NewJob",
]


class AsyncClient:
    """A queue's client on an asyncio Redis connection (strings decoded).

    ``idempotency_ttl_s``: how long an idempotency key remembers its first job, seconds.
    """

    def __init__(
        self,
        redis: AsyncRedis,
        settings: QueueSettings | None = None,
        *,
        idempotency_ttl_s: int = DEFAULT_IDEMPOTENCY_TTL_S,
        owns_redis: bool = False,
    ) -> None:
        self.redis = redis
        self.settings = settings or QueueSettings()
        self.keys = self.settings.keys
        self.idempotency_ttl_s = idempotency_ttl_s
        self._owns_redis = owns_redis
        self._enqueue = redis.register_script(scripts.ENQUEUE)
        self._retry = Retry(
            ExponentialBackoff(cap=1.0, base=0.05),
            ENQUEUE_RETRIES,
            supported_errors=(redis_errors.ConnectionError, redis_errors.TimeoutError),
        )
        self._cancel = redis.register_script(scripts.CANCEL)
        self._replay = redis.register_script(scripts.REPLAY)

    @classmethod
    def from_settings(
        cls, settings: QueueSettings, *, idempotency_ttl_s: int = DEFAULT_IDEMPOTENCY_TTL_S
    ) -> AsyncClient:
        """A client with its own connection to ``settings.redis_url``; `aclose` closes it."""
        redis = async_redis(settings.redis_url)
        return cls(redis, settings, idempotency_ttl_s=idempotency_ttl_s, owns_redis=True)

    @classmethod
    def from_url(cls, url: str, **queue: Any) -> AsyncClient:
        """A client of the queue ``queue`` (QueueSettings fields) on the Redis at ``url``."""
        return cls.from_settings(QueueSettings(redis_url=url, **queue))

    async def aclose(self) -> None:
        if self._owns_redis:
            await self.redis.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def enqueue(self, job_type: str, payload: dict[str, Any], **options: Any) -> Enqueued:
        """Enqueue one job; ``options`` are the other `NewJob` fields (priority, delay_s...)."""
        (result,) = await self.enqueue_many([NewJob(job_type, payload, **options)])
        return result

    async def enqueue_many(
        self, jobs: Sequence[NewJob], *, not_after_ms: int = 0
    ) -> list[Enqueued]:
        """Enqueue ``jobs`` in one round trip, all or nothing; results in the same order.

        Every job is checked before anything is written: one bad job raises
        `InvalidNewJob` (a ValueError saying which job and why) and nothing is enqueued.
        With ``settings.enqueue_min_replicas`` the jobs count as enqueued only once that
        many replicas hold them, else `EnqueueUnconfirmed` (`jobqueue.core.replication`).
        Each job's id is fixed before the call, so the call is sent again after a lost
        reply without enqueueing anything twice. ``not_after_ms`` (epoch ms, 0 = none):
        past it by Redis's clock nothing more is written and `EnqueueExpired` names the jobs.
        """
        now_ms = _now_ms()
        prepared: list[_Prepared] = []
        for index, job in enumerate(jobs):
            try:
                prepared.append(self._prepare(job, now_ms))
            except ValueError as exc:
                raise InvalidNewJob(index, str(exc)) from None
        results = await self._call_enqueue(prepared, now_ms, not_after_ms)
        expired = [r.job_id for r in results if r.state == EXPIRED]
        if expired:
            raise EnqueueExpired(expired)
        return results

    async def enqueue_each(
        self, jobs: Sequence[NewJob], *, not_after_ms: int = 0
    ) -> list[Enqueued | Exception]:
        """Enqueue ``jobs`` together where possible, each with its own outcome: an
        `Enqueued`, or the exception that job alone met (`InvalidNewJob` with index 0,
        `EnqueueExpired`, a Redis error). One job's problem never fails another's; only
        Redis being unavailable (`REDIS_UNAVAILABLE`) is every job's outcome at once."""
        now_ms = _now_ms()
        outcomes: list[Enqueued | Exception | None] = [None] * len(jobs)
        prepared: list[_Prepared] = []
        sent: list[int] = []
        for index, job in enumerate(jobs):
            try:
                prepared.append(self._prepare(job, now_ms))
                sent.append(index)
            except ValueError as exc:
                outcomes[index] = InvalidNewJob(0, str(exc))
        results = await self._enqueue_apart(prepared, now_ms, not_after_ms)
        for index, outcome in zip(sent, results, strict=True):
            outcomes[index] = outcome
        return [_expired_as_error(o) for o in outcomes if o is not None]

    def _prepare(self, job: NewJob, now_ms: int) -> _Prepared:
        """The script argument of ``job`` and the keys it touches (ValueError if bad)."""
        job_id, arg = enqueue_arg(job, now_ms)
        keys = [self.keys.status(job_id)]
        if job.idempotency_key is not None:
            keys.append(self.keys.idempotency(job.idempotency_key))
        done = self.keys.done(job_id)
        if done is not None:
            keys.append(done)
        return job_id, arg, keys, job.job_id is not None

    async def _enqueue_apart(
        self, prepared: list[_Prepared], now_ms: int, not_after_ms: int, check: bool = False
    ) -> list[Enqueued | Exception]:
        if not prepared:
            return []
        try:
            return list(await self._call_enqueue(prepared, now_ms, not_after_ms, check))
        except REDIS_UNAVAILABLE as exc:
            return [exc] * len(prepared)
        except EnqueueUnconfirmed as exc:  # each caller hears of its own job only
            return [exc.only(index) for index in range(len(prepared))]
        except Exception as exc:
            if len(prepared) == 1:
                return [exc]
        # Some job broke the shared call (a script error, a value Redis refused): each
        # goes alone. Those the failed call did write are answered as duplicates of
        # themselves (their ids have records), never written twice.
        singles = [self._enqueue_apart([job], now_ms, not_after_ms, True) for job in prepared]
        return [outcome for [outcome] in await asyncio.gather(*singles)]

    async def _call_enqueue(
        self, prepared: list[_Prepared], now_ms: int, not_after_ms: int, check: bool = False
    ) -> list[Enqueued]:
        """One enqueue, sent again after a lost reply: safe, the ids are in ``prepared``.

        Whether a job exists already is checked (``check``) only where it can: for ids
        the caller chose, for a call sent again, and when asked. A fresh id the client
        made cannot exist, and not checking saves Redis three lookups a job."""
        sent = [check or any(caller_id for *_, caller_id in prepared)]

        async def once() -> list[Enqueued]:
            check_now, sent[0] = sent[0], True  # a second call may follow a lost reply
            return await self._call_enqueue_once(prepared, now_ms, not_after_ms, check_now)

        async def lost(error: Exception) -> None:
            pass  # redis-py has dropped the broken connection already

        return await self._retry.call_with_retry(once, lost)

    async def _call_enqueue_once(
        self, prepared: list[_Prepared], now_ms: int, not_after_ms: int, check: bool
    ) -> list[Enqueued]:
        head: list[bytes | str] = [
            str(self.settings.status_ttl_s),
            str(self.idempotency_ttl_s),
            utc_now_iso(),
            str(now_ms),
            str(not_after_ms),
            "1" if check else "0",
        ]
        q = self.keys
        queue_keys = [q.stream, q.delayed, q.delayed_jobs, q.queued]
        calls = []
        for i in range(0, len(prepared), JOBS_PER_SCRIPT_CALL):
            chunk = prepared[i : i + JOBS_PER_SCRIPT_CALL]
            keys = queue_keys + [key for _, _, job_keys, _ in chunk for key in job_keys]
            calls.append((keys, head + [arg for _, arg, _, _ in chunk]))
        if self.settings.enqueue_min_replicas:
            replies = await enqueue_replicated(
                self.redis,
                self._enqueue,
                calls,
                [job_id for job_id, *_ in prepared],
                min_replicas=self.settings.enqueue_min_replicas,
                timeout_ms=self.settings.enqueue_replicas_timeout_ms,
            )
        elif len(calls) == 1:
            replies = [await self._enqueue(keys=calls[0][0], args=calls[0][1])]
        else:
            async with self.redis.pipeline(transaction=True) as pipe:
                for keys, args in calls:
                    await self._enqueue(keys=keys, args=args, client=pipe)
                replies = await pipe.execute()
        flat = [value for reply in replies for value in reply]
        results = [Enqueued.from_reply(flat[i : i + 4]) for i in range(0, len(flat), 4)]
        return await self._with_first_records(results)

    async def _with_first_records(self, results: list[Enqueued]) -> list[Enqueued]:
        """Duplicates answer their first job's entry id and state, read after the script
        (where that job's state lives is not known in advance, see `get`)."""
        for i, result in enumerate(results):
            if result.duplicate:
                record = await read_record(self.redis, self.keys, result.job_id) or {}
                entry_id, state = record.get("entry_id"), record.get("state", "")
                results[i] = dataclasses.replace(result, entry_id=entry_id, state=state)
        return results

    async def get(self, job_id: str) -> JobInfo | None:
        """The status record of ``job_id``, or None when unknown or expired.

        Where it is read from depends on the state (`jobqueue.core.records`): a job
        waiting in the stream is its entry, a short job's success a field of a shared
        hash, anything else the job's own hash."""
        record = await read_record(self.redis, self.keys, job_id)
        return JobInfo.from_record(job_id, record) if record else None

    # `timeout` is how long Redis blocks, answered with the record either way (not a
    # cancel scope that raises), so asyncio.timeout is no substitute.
    async def wait(self, job_id: str, timeout: float) -> JobInfo | None:  # noqa: ASYNC109
        """Wait up to ``timeout`` seconds for ``job_id`` to settle (succeeded, dead or
        cancelled); its status record then, or at the timeout (``finished`` tells which);
        None for an unknown or expired job. Blocks on Redis, no polling loop
        (`jobqueue.core.waiting`)."""
        info = await wait_settled(self.redis, self.keys, job_id, timeout, lambda: self.get(job_id))
        return cast(JobInfo | None, info)

    async def cancel(self, job_id: str) -> CancelOutcome:
        """Cancel a queued or delayed job, or ask a running one to stop (docs/internals.md)."""
        keys = [
            self.keys.delayed,
            self.keys.delayed_jobs,
            self.keys.stream,
            self.keys.status(job_id),
            self.keys.queued,
            self.keys.waiting,
            self.keys.settled,
        ]
        done = self.keys.done(job_id)
        if done is not None:
            keys.append(done)
        args = [job_id, self.keys.group, utc_now_iso(), str(self.settings.status_ttl_s)]
        answer, state = await self._cancel(keys=keys, args=args)
        return CancelOutcome(job_id=job_id, answer=answer, state=state)

    async def dead_letters(self, *, after: str | None = None, limit: int = 50) -> DeadPage:
        """Dead letters oldest first, ``limit`` at most, starting after entry id ``after``."""
        if after is not None and not is_entry_id(after):
            raise ValueError(
                f"'after' must be a stream entry id like 1700000000000-0, got {after!r}"
            )
        start = "-" if after is None else f"({after}"
        reply = await self.redis.xrange(self.keys.dead, min=start, max="+", count=limit + 1)
        entries = _entries(reply)
        items = [DeadLetter(entry_id, fields) for entry_id, fields in entries[:limit]]
        next_after = items[-1].entry_id if len(entries) > limit else None
        return DeadPage(items=items, next_after=next_after)

    async def dead_letter(self, entry_id: str) -> DeadLetter | None:
        """One dead letter by its entry id in the dead-letter stream, or None."""
        if not is_entry_id(entry_id):
            return None
        entries = _entries(
            await self.redis.xrange(self.keys.dead, min=entry_id, max=entry_id, count=1)
        )
        return DeadLetter(entries[0][0], entries[0][1]) if entries else None

    async def find_dead(self, ref: str, *, page: int = 500) -> DeadLetter | None:
        """The dead letter ``ref`` names: its entry id in the dead-letter stream, or the
        job's id (through the job's status record, else a scan of the dead letters for
        its ``original_id``, ``page`` entries per call). None when there is none."""
        if is_entry_id(ref):
            found = await self.dead_letter(ref)
            if found is not None:
                return found
        info = await self.get(ref)
        if info is not None and info.dead_entry_id:
            found = await self.dead_letter(info.dead_entry_id)
            if found is not None and found.job_id == ref:
                return found
        after = None
        while True:
            batch = await self.dead_letters(after=after, limit=page)
            for dead in batch.items:
                if dead.job_id == ref:
                    return dead
            if batch.next_after is None:
                return None
            after = batch.next_after

    async def replay(self, dead_entry_id: str) -> Enqueued | None:
        """Put a dead letter back on the stream with attempts reset, removing it atomically.

        None when there is no such dead letter (never existed, replayed or deleted).
        """
        dead = await self.dead_letter(dead_entry_id)
        if dead is None:
            return None
        fields = replay_fields(dead.fields)
        job_id = fields["id"]
        keys = [self.keys.dead, self.keys.stream, self.keys.status(job_id)]
        args = [dead_entry_id, utc_now_iso(), str(self.settings.status_ttl_s)]
        args += [fields.get("type", ""), fields.get("enqueued_at", "")]
        args += [value for pair in fields.items() for value in pair]
        entry_id = await self._replay(keys=keys, args=args)
        if entry_id is None:
            return None
        return Enqueued(job_id=job_id, entry_id=entry_id, state="queued", duplicate=False)

    async def delete_dead(self, dead_entry_id: str) -> bool:
        """Delete one dead letter; False when there was none with that id."""
        if not is_entry_id(dead_entry_id):
            return False
        return bool(await self.redis.xdel(self.keys.dead, dead_entry_id))

    async def stats(self) -> QueueSample:
        """Length, lag, pending, delayed and dead-letter counts and the consumer groups."""
        return await sample_queue(self.redis, self.keys, with_consumers=True)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())


class Client:
    """The synchronous `AsyncClient`: same methods, run on a private event loop.

    For scripts and synchronous apps; inside a running event loop use `AsyncClient`.
    """

    def __init__(
        self,
        settings: QueueSettings | None = None,
        *,
        idempotency_ttl_s: int = DEFAULT_IDEMPOTENCY_TTL_S,
    ) -> None:
        self._runner = asyncio.Runner()
        settings = settings or QueueSettings()
        # The async client is created on the runner's loop, which its connections bind to.
        self._async = self._run(_make_async(settings, idempotency_ttl_s))

    @classmethod
    def from_url(cls, url: str, **queue: Any) -> Client:
        return cls(QueueSettings(redis_url=url, **queue))

    @property
    def settings(self) -> QueueSettings:
        return self._async.settings

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def close(self) -> None:
        self._run(self._async.aclose())
        self._runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def enqueue(self, job_type: str, payload: dict[str, Any], **options: Any) -> Enqueued:
        return self._run(self._async.enqueue(job_type, payload, **options))

    def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        return self._run(self._async.enqueue_many(jobs))

    def get(self, job_id: str) -> JobInfo | None:
        return self._run(self._async.get(job_id))

    def wait(self, job_id: str, timeout: float) -> JobInfo | None:
        """`AsyncClient.wait`, blocking this thread."""
        return self._run(self._async.wait(job_id, timeout))

    def cancel(self, job_id: str) -> CancelOutcome:
        return self._run(self._async.cancel(job_id))

    def dead_letters(self, *, after: str | None = None, limit: int = 50) -> DeadPage:
        return self._run(self._async.dead_letters(after=after, limit=limit))

    def dead_letter(self, entry_id: str) -> DeadLetter | None:
        return self._run(self._async.dead_letter(entry_id))

    def replay(self, dead_entry_id: str) -> Enqueued | None:
        return self._run(self._async.replay(dead_entry_id))

    def find_dead(self, ref: str) -> DeadLetter | None:
        return self._run(self._async.find_dead(ref))

    def delete_dead(self, dead_entry_id: str) -> bool:
        return self._run(self._async.delete_dead(dead_entry_id))

    def stats(self) -> QueueSample:
        return self._run(self._async.stats())

    def ping(self) -> bool:
        return self._run(self._async.ping())


async def _make_async(settings: QueueSettings, idempotency_ttl_s: int) -> AsyncClient:
    return AsyncClient.from_settings(settings, idempotency_ttl_s=idempotency_ttl_s)


def is_entry_id(text: str) -> bool:
    """Whether ``text`` is a full stream entry id, ``<ms>-<seq>``; up to 19 digits each,
    so both fit the unsigned 64 bits Redis allows."""
    return ENTRY_ID.fullmatch(text) is not None


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """Stream entries as the decoded connection returns them (redis-py types them loosely)."""
    return cast(list[tuple[str, dict[str, str]]], reply or [])


def _expired_as_error(outcome: Enqueued | Exception) -> Enqueued | Exception:
    if isinstance(outcome, Enqueued) and outcome.state == EXPIRED:
        return EnqueueExpired([outcome.job_id])
    return outcome


def _now_ms() -> int:
    # Rounded up, so a delayed job is never due even a millisecond early.
    return math.ceil(time.time() * 1000)
