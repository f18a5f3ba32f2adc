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
from collections.abc import Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from jobqueue.core import scripts
from jobqueue.core.backlog import QueueSample, parse_entry_id
from jobqueue.core.client_types import (
    EXPIRED,
    AmbiguousDeadLetter,
    CancelOutcome,
    DeadLetter,
    DeadPage,
    Enqueued,
    EnqueueExpired,
    InvalidNewJob,
    JobInfo,
    NewJob,
    PartlyEnqueued,
    enqueue_arg,
)
from jobqueue.core.connection import REDIS_UNAVAILABLE, async_redis
from jobqueue.core.errors import EnqueueUnconfirmed
from jobqueue.core.keys import QueueKeys
from jobqueue.core.partitions import lookup_order, partition_for, sample_partitions, sum_samples
from jobqueue.core.records import read_record
from jobqueue.core.replication import enqueue_replicated
from jobqueue.core.settings import QueueSettings
from jobqueue.core.waiting import wait_settled
from jobqueue.core.wire import MAX_PRIORITY, MIN_PRIORITY, replay_fields, utc_now_iso

T = TypeVar("T")

DEFAULT_IDEMPOTENCY_TTL_S = 24 * 3600
JOBS_PER_SCRIPT_CALL = 500
"""Bounds how long one script call holds Redis; bigger batches become several calls
inside one MULTI, still one round trip."""
_Prepared = tuple[str, list[str], list[str], bool, int, bool]
"""One job ready for the enqueue script: its id, its arguments, the keys it may touch,
whether its id was the caller's, its partition (`jobqueue.core.partitions`), and whether
the script needs its keys even without a lookup (an idempotency key, a delay)."""
ENQUEUE_RETRIES = 3
"""Times an enqueue whose reply was lost is sent again, with the same job ids (so never
written twice), before its caller hears the connection error."""
ENTRY_ID = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")

__all__ = [
    "AmbiguousDeadLetter",
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
    "PartlyEnqueued",
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
        self.partitions = self.settings.partition_keys
        """Every partition's keys, partition 0 (the queue's stream) first."""
        self.keys = self.partitions[0]
        # Partitions are different slots: on a cluster no script call, pipeline or
        # transaction may hold two of them (on one server one MULTI may).
        self._cluster = isinstance(redis, RedisCluster)
        dead = [keys.dead for keys in self.partitions]
        self._dead_shared = len(set(dead)) < len(dead)
        """JOBQUEUE_DEAD_STREAM names one dead-letter stream for every partition."""
        self._dead_streams = list(dict.fromkeys(dead))
        lanes = self.settings.lanes
        self._stream_index = {
            priority: [name for name, _ in lanes.named_streams(self.keys)].index(
                lanes.recorded_name(priority)
            )
            + 1
            for priority in range(MIN_PRIORITY, MAX_PRIORITY + 1)
        }
        """The script's ready stream (1-based, in `Lanes.named_streams`) of each priority:
        the same in every partition."""
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
        A partitioned queue on a Redis Cluster writes each partition's jobs on its own
        primary, all at once: all or nothing holds per partition there (an error raised
        for one may leave the others' jobs enqueued; jobs with a ``job_id`` of their own
        can be sent again safely).
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
        """The script argument of ``job``, its partition and the keys it touches there
        (ValueError if bad)."""
        stream = self._stream_index.get(job.priority, 1) if isinstance(job.priority, int) else 1
        job_id, arg = enqueue_arg(job, now_ms, stream)
        partition = partition_for(
            job_id,
            len(self.partitions),
            partition_key=job.partition_key,
            idempotency_key=job.idempotency_key,
        )
        q = self.partitions[partition]
        keys = [q.status(job_id)]
        if job.idempotency_key is not None:
            keys.append(q.idempotency(job.idempotency_key))
        done = q.done(job_id)
        if done is not None:
            keys.append(done)
        own_keys = job.idempotency_key is not None or job.due_ms(now_ms) > 0
        return job_id, arg, keys, job.job_id is not None, partition, own_keys

    def _apart_on_cluster(self, prepared: list[_Prepared]) -> list[list[int]] | None:
        """The indexes of ``prepared`` by partition when they must go as separate calls
        (several partitions on a cluster), else None (one call holds them all)."""
        if not self._cluster or len(self.partitions) == 1:
            return None
        groups: dict[int, list[int]] = {}
        for index, job in enumerate(prepared):
            groups.setdefault(job[4], []).append(index)
        return list(groups.values()) if len(groups) > 1 else None

    async def _enqueue_apart(
        self, prepared: list[_Prepared], now_ms: int, not_after_ms: int, check: bool = False
    ) -> list[Enqueued | Exception]:
        if not prepared:
            return []
        apart = self._apart_on_cluster(prepared)
        if apart is not None:  # each partition answers for its own jobs
            outcomes: list[Enqueued | Exception | None] = [None] * len(prepared)
            answers = await asyncio.gather(
                *(
                    self._enqueue_apart([prepared[i] for i in group], now_ms, not_after_ms, check)
                    for group in apart
                )
            )
            for group, answer in zip(apart, answers, strict=True):
                for index, outcome in zip(group, answer, strict=True):
                    outcomes[index] = outcome
            return [o for o in outcomes if o is not None]
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
        made cannot exist, and not checking saves Redis three lookups a job.

        On a cluster, the jobs of each partition are one call of their own, all sent at
        once: all or nothing holds per partition, not across them."""
        apart = self._apart_on_cluster(prepared)
        if apart is not None:
            answers = await asyncio.gather(
                *(
                    self._call_enqueue([prepared[i] for i in group], now_ms, not_after_ms, check)
                    for group in apart
                ),
                return_exceptions=True,
            )
            failed = [a for a in answers if isinstance(a, BaseException)]
            if failed and all(isinstance(f, EnqueueUnconfirmed) for f in failed):
                # As on one Redis: the batch is unconfirmed, every job of it named (those
                # of the confirmed partitions are queued: "may or may not" holds).
                reason = cast(EnqueueUnconfirmed, failed[0]).reason
                confirmed = len(answers) - len(failed)
                raise EnqueueUnconfirmed(
                    [job[0] for job in prepared],
                    f"{reason} ({confirmed} of {len(answers)} partitions confirmed)",
                ) from failed[0]
            if failed:
                written = [r.job_id for a in answers if not isinstance(a, BaseException) for r in a]
                if written:  # never answer "nothing written" for jobs that were
                    raise PartlyEnqueued(written, failed[0]) from failed[0]
                raise failed[0]
            results: list[Enqueued | None] = [None] * len(prepared)
            for group, answer in zip(apart, answers, strict=True):
                assert not isinstance(answer, BaseException)
                for index, result in zip(group, answer, strict=True):
                    results[index] = result
            return [r for r in results if r is not None]
        sent = [check or any(job[3] for job in prepared)]

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
        # One call per partition touched (and per JOBS_PER_SCRIPT_CALL jobs of it);
        # ``order`` maps the replies, partition by partition, back to ``prepared``.
        by_partition: dict[int, list[int]] = {}
        for index, job in enumerate(prepared):
            by_partition.setdefault(job[4], []).append(index)
        calls, order, sizes = [], [], []
        for partition, indexes in by_partition.items():
            q = self.partitions[partition]
            ready = self._ready(q)
            queue_keys = [q.delayed, q.delayed_jobs, q.queued, *(stream for _, stream in ready)]
            for i in range(0, len(indexes), JOBS_PER_SCRIPT_CALL):
                chunk = indexes[i : i + JOBS_PER_SCRIPT_CALL]
                # A job's own keys only where the script may touch them (`scripts.ENQUEUE`).
                keys = queue_keys + [
                    key for j in chunk if check or prepared[j][5] for key in prepared[j][2]
                ]
                args = head + self._names(ready)
                for j in chunk:
                    args += prepared[j][1]
                calls.append((keys, args))
                order += chunk
                sizes.append(len(chunk))
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
                replies = await pipe.execute(raise_on_error=False)
            self._raise_failed_calls(replies, sizes, order, prepared)
        answers = [answer for reply in replies for answer in reply]
        placed: list[Enqueued | None] = [None] * len(prepared)
        for index, answer in zip(order, answers, strict=True):
            placed[index] = Enqueued.from_answer(prepared[index][0], answer)
        results = [result for result in placed if result is not None]
        return await self._with_first_records(results, prepared)

    @staticmethod
    def _raise_failed_calls(
        replies: list[Any], sizes: list[int], order: list[int], prepared: list[_Prepared]
    ) -> None:
        """EXEC runs every call of the transaction even when one fails (a script error in
        one partition, e.g. a foreign key): the other calls' jobs are written. As on a
        cluster, that is `PartlyEnqueued` naming them, not an error that hides them.
        ``sizes``: the jobs of each call, whose indexes follow each other in ``order``."""
        failed = [reply for reply in replies if isinstance(reply, Exception)]
        if not failed:
            return
        written: list[str] = []
        at = 0
        for size, reply in zip(sizes, replies, strict=True):
            if not isinstance(reply, Exception):
                written += [prepared[j][0] for j in order[at : at + size]]
            at += size
        if written:
            raise PartlyEnqueued(written, failed[0]) from failed[0]
        raise failed[0]

    async def _with_first_records(
        self, results: list[Enqueued], prepared: list[_Prepared]
    ) -> list[Enqueued]:
        """Duplicates answer their first job's entry id and state, read after the script
        (where that job's state lives is not known in advance, see `get`). The first
        job is in the partition the repeat went to: the same key or id chose it."""
        for i, result in enumerate(results):
            if result.duplicate:
                keys = self.partitions[prepared[i][4]]
                record = await read_record(self.redis, keys, result.job_id) or {}
                entry_id, state = record.get("entry_id"), record.get("state", "")
                results[i] = dataclasses.replace(result, entry_id=entry_id, state=state)
        return results

    async def _find(self, job_id: str) -> tuple[int, dict[str, str] | None]:
        """The partition holding ``job_id`` and its record: the id's home partition
        first (one lookup, where every job without a partition or idempotency key is),
        then all the others at once. (home, None) when no partition knows the job."""
        order = lookup_order(job_id, len(self.partitions))
        record = await read_record(self.redis, self.partitions[order[0]], job_id)
        if record or len(order) == 1:
            return order[0], record
        others = await asyncio.gather(
            *(read_record(self.redis, self.partitions[p], job_id) for p in order[1:])
        )
        for partition, found in zip(order[1:], others, strict=True):
            if found:
                return partition, found
        return order[0], None

    async def get(self, job_id: str) -> JobInfo | None:
        """The status record of ``job_id``, or None when unknown or expired.

        Where it is read from depends on the state (`jobqueue.core.records`): a job
        waiting in the stream is its entry, a short job's success a field of a shared
        hash, anything else the job's own hash. In a partitioned queue the job's home
        partition is asked first, every other one only when it is not there
        (`jobqueue.core.partitions`)."""
        _, record = await self._find(job_id)
        return JobInfo.from_record(job_id, record) if record else None

    async def _get_in(self, partition: int, job_id: str) -> JobInfo | None:
        record = await read_record(self.redis, self.partitions[partition], job_id)
        return JobInfo.from_record(job_id, record) if record else None

    # `timeout` is how long Redis blocks, answered with the record either way (not a
    # cancel scope that raises), so asyncio.timeout is no substitute.
    async def wait(self, job_id: str, timeout: float) -> JobInfo | None:  # noqa: ASYNC109
        """Wait up to ``timeout`` seconds for ``job_id`` to settle (succeeded, dead or
        cancelled); its status record then, or at the timeout (``finished`` tells which);
        None for an unknown or expired job. Blocks on Redis, no polling loop
        (`jobqueue.core.waiting`)."""
        partition, record = await self._find(job_id)
        if record is None:
            return None
        info = await wait_settled(
            self.redis,
            self.partitions[partition],
            job_id,
            timeout,
            lambda: self._get_in(partition, job_id),
        )
        return cast(JobInfo | None, info)

    async def cancel(self, job_id: str) -> CancelOutcome:
        """Cancel a queued or delayed job, or ask a running one to stop (docs/internals.md).
        In a partitioned queue, in the partition that holds it (see `get`)."""
        partition = (await self._find(job_id))[0] if len(self.partitions) > 1 else 0
        q = self.partitions[partition]
        ready = self._ready(q)
        keys = [
            q.delayed,
            q.delayed_jobs,
            q.status(job_id),
            q.queued,
            q.waiting,
            q.settled,
            *(stream for _, stream in ready),
        ]
        done = q.done(job_id)
        if done is not None:
            keys.append(done)
        args = [job_id, q.group, utc_now_iso(), str(self.settings.status_ttl_s)]
        args += [str(len(ready)), *(name for name, _ in ready)]
        answer, state = await self._cancel(keys=keys, args=args)
        return CancelOutcome(job_id=job_id, answer=answer, state=state)

    async def dead_letters(self, *, after: str | None = None, limit: int = 50) -> DeadPage:
        """Dead letters oldest first, ``limit`` at most, starting after entry id ``after``.

        A partitioned queue's pages merge its partitions' dead-letter streams by entry
        id (one read of each per page)."""
        if after is not None and not is_entry_id(after):
            raise ValueError(
                f"'after' must be a stream entry id like 1700000000000-0, got {after!r}"
            )
        start = "-" if after is None else f"({after}"
        replies = await asyncio.gather(
            *(
                self.redis.xrange(dead, min=start, max="+", count=limit + 1)
                for dead in self._dead_streams
            )
        )
        entries = [entry for reply in replies for entry in _entries(reply)]
        size = limit
        if len(replies) > 1:
            entries.sort(key=lambda entry: parse_entry_id(entry[0]))
            size = _page_size(entries, limit)
        items = [DeadLetter(entry_id, fields) for entry_id, fields in entries[:size]]
        next_after = items[-1].entry_id if len(entries) > size else None
        return DeadPage(items=items, next_after=next_after)

    async def dead_letter(self, entry_id: str, *, job_id: str | None = None) -> DeadLetter | None:
        """One dead letter by its entry id in the dead-letter stream, or None.
        ``job_id``: the one of that job, when partitions share the entry id."""
        found = await self._find_dead_entry(entry_id, job_id)
        return found[1] if found else None

    async def _find_dead_entry(
        self, entry_id: str, job_id: str | None = None
    ) -> tuple[int, DeadLetter] | None:
        """(index in `_dead_streams`, the dead letter) of ``entry_id``, or None.

        Each partition's dead-letter stream numbers its own entries, so two partitions
        may hold the same id (dead-lettered in the same millisecond): ``job_id`` then
        says which, else `AmbiguousDeadLetter`."""
        if not is_entry_id(entry_id):
            return None
        replies = await asyncio.gather(
            *(
                self.redis.xrange(dead, min=entry_id, max=entry_id, count=1)
                for dead in self._dead_streams
            )
        )
        found = []
        for index, reply in enumerate(replies):
            entries = _entries(reply)
            if entries:
                dead = DeadLetter(entries[0][0], entries[0][1])
                if job_id is None or dead.job_id == job_id:
                    found.append((index, dead))
        if len(found) > 1:
            raise AmbiguousDeadLetter(entry_id, [dead.job_id for _, dead in found])
        return found[0] if found else None

    async def find_dead(self, ref: str, *, page: int = 500) -> DeadLetter | None:
        """The dead letter ``ref`` names: its entry id in the dead-letter stream, or the
        job's id (through the job's status record, else a scan of the dead letters for
        its ``original_id``, ``page`` entries per call). None when there is none."""
        if is_entry_id(ref):
            found = await self.dead_letter(ref)
            if found is not None:
                return found
        partition, record = await self._find(ref)
        info = JobInfo.from_record(ref, record) if record else None
        if info is not None and info.dead_entry_id:
            stream = self.partitions[partition].dead
            entries = _entries(
                await self.redis.xrange(
                    stream, min=info.dead_entry_id, max=info.dead_entry_id, count=1
                )
            )
            found = DeadLetter(entries[0][0], entries[0][1]) if entries else None
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

    async def replay(self, dead_entry_id: str, *, job_id: str | None = None) -> Enqueued | None:
        """Put a dead letter back on the stream with attempts reset, removing it atomically.

        None when there is no such dead letter (never existed, replayed or deleted).
        ``job_id`` picks among partitions' dead letters of the same entry id (see
        `dead_letter`). A partition's dead letter goes back to that partition's stream.
        """
        located = await self._find_dead_entry(dead_entry_id, job_id)
        if located is None:
            return None
        index, dead = located
        fields = replay_fields(dead.fields)
        job_id = fields["id"]
        if self._dead_shared:  # back where the rules put it: the job's own partition
            partition = partition_for(
                job_id,
                len(self.partitions),
                partition_key=fields.get("partition_key"),
                idempotency_key=fields.get("idempotency_key"),
            )
        else:
            partition = index
        q = self.partitions[partition]
        lane, stream = self._replay_stream(q, dead.fields)
        keys = [self._dead_streams[index], stream, q.status(job_id)]
        args = [dead_entry_id, utc_now_iso(), str(self.settings.status_ttl_s)]
        args += [fields.get("type", ""), fields.get("enqueued_at", ""), lane]
        args += [value for pair in fields.items() for value in pair]
        entry_id = await self._replay(keys=keys, args=args)
        if entry_id is None:
            return None
        return Enqueued(job_id=job_id, entry_id=entry_id, state="queued", duplicate=False)

    def _ready(self, q: QueueKeys) -> list[tuple[str, str]]:
        """The ready streams of partition ``q`` with the lane name a job in each is
        recorded under (`Lanes.named_streams`): what the scripts get, in that order."""
        return self.settings.lanes.named_streams(q)

    @staticmethod
    def _names(ready: list[tuple[str, str]]) -> list[str]:
        """ENQUEUE's ready-stream arguments: their count, then what follows the entry id
        in ``queued`` for a job in each ('' in the queue's stream, else ' <lane>')."""
        return [str(len(ready)), *(f" {name}" if name else "" for name, _ in ready)]

    def _replay_stream(self, q: QueueKeys, dead: Mapping[str, str]) -> tuple[str, str]:
        """The (recorded lane name, stream) of partition ``q`` a dead letter goes back
        to: the ready stream it failed in when that is still one of the partition's (its
        lane), else the lane of its priority now (a lane since removed, a letter from
        before lanes or from another partition)."""
        ready = self._ready(q)
        source = dead.get("source_stream")
        for name, stream in ready:
            if stream == source:
                return name, stream
        try:  # as the worker reads it; text it cannot read goes to the default lane
            route = self.settings.lanes.recorded_name(int(dead.get("priority", "")))
        except ValueError:  # "abc", and "²" too (isdigit() but no int)
            route = ""
        return next((name, s) for name, s in ready if name == route)

    async def delete_dead(self, dead_entry_id: str, *, job_id: str | None = None) -> bool:
        """Delete one dead letter; False when there was none with that id (``job_id``:
        as for `replay`)."""
        if not is_entry_id(dead_entry_id):
            return False
        located = await self._find_dead_entry(dead_entry_id, job_id)
        if located is None:
            return False
        return bool(await self.redis.xdel(self._dead_streams[located[0]], dead_entry_id))

    async def stats(self) -> QueueSample:
        """Length, lag, pending, delayed and dead-letter counts and the consumer groups;
        a partitioned queue's summed over its partitions."""
        return self.summed(await self.partition_stats())

    def summed(self, samples: list[QueueSample]) -> QueueSample:
        """The queue's `stats` from its `partition_stats`."""
        return sum_samples(samples, self.settings.stream, shared_dead=self._dead_shared)

    async def partition_stats(self) -> list[QueueSample]:
        """`stats` of each partition, in partition order (one item when unpartitioned)."""
        return await sample_partitions(
            self.redis, self.partitions, lanes=self.settings.lanes, with_consumers=True
        )

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

    def dead_letter(self, entry_id: str, *, job_id: str | None = None) -> DeadLetter | None:
        return self._run(self._async.dead_letter(entry_id, job_id=job_id))

    def replay(self, dead_entry_id: str, *, job_id: str | None = None) -> Enqueued | None:
        return self._run(self._async.replay(dead_entry_id, job_id=job_id))

    def find_dead(self, ref: str) -> DeadLetter | None:
        return self._run(self._async.find_dead(ref))

    def delete_dead(self, dead_entry_id: str, *, job_id: str | None = None) -> bool:
        return self._run(self._async.delete_dead(dead_entry_id, job_id=job_id))

    def stats(self) -> QueueSample:
        return self._run(self._async.stats())

    def partition_stats(self) -> list[QueueSample]:
        return self._run(self._async.partition_stats())

    def summed(self, samples: list[QueueSample]) -> QueueSample:
        return self._async.summed(samples)

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


def _page_size(entries: list[tuple[str, dict[str, str]]], limit: int) -> int:
    """How many of the merged ``entries`` one page of ``limit`` takes: never part of a
    run of equal ids (partitions' dead letters of one millisecond), since the next page
    starts after the last id; the whole run when it alone is longer than ``limit``."""
    if len(entries) <= limit or entries[limit][0] != entries[limit - 1][0]:
        return limit
    tied = entries[limit][0]
    first = next(i for i, entry in enumerate(entries) if entry[0] == tied)
    if first > 0:
        return first
    return sum(1 for entry in entries if entry[0] == tied)


def _expired_as_error(outcome: Enqueued | Exception) -> Enqueued | Exception:
    if isinstance(outcome, Enqueued) and outcome.state == EXPIRED:
        return EnqueueExpired([outcome.job_id])
    return outcome


def _now_ms() -> int:
    # Rounded up, so a delayed job is never due even a millisecond early.
    return math.ceil(time.time() * 1000)
