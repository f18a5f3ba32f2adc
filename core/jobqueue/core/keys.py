"""Every Redis key one queue uses, in one place, all in one Redis Cluster slot.

A queue is named by its stream (default ``jobs:work``), the key existing producers
``XADD`` to. Every other key of the queue carries the stream's name as a hash tag, so
it hashes to the stream's slot: ``{jobs:work}:delayed`` lives with ``jobs:work`` (a key
with a ``{...}`` part hashes only that part). Every script of the queue therefore stays
in one slot, on a single Redis and on a Cluster alike, and receives every key it
touches in ``KEYS``. A stream name that has a hash tag of its own (``{tenant}:work``)
keeps it: its keys are ``{tenant}:work:delayed`` and so on.

With ``tag`` the stream's tag (``{jobs:work}``, or the name itself when it has one):

========================  ==========  ===============================================
key                       type        holds
========================  ==========  ===============================================
``{stream}``              stream      jobs ready to run (SPEC §2 fields); the default
                                      lane's stream when lanes are declared
``{tag}:dead``            stream      dead letters (the default; ``dead_stream`` sets
                                      another, e.g. the old default ``jobs:dead``)
``{tag}:delayed``         sorted set  ids of delayed jobs and retries; score = due ms
``{tag}:delayed:jobs``    hash        job id -> JSON object of its stream fields
``{tag}:job:{id}``        hash        one job's status record (state, attempts, ...),
                                      written for every state but the two below
``{tag}:queued``          hash        job id -> entry id of client-enqueued jobs that
                                      wait in the stream (removed when they start)
``{tag}:done:{b}``        hash        job id -> success record (JSON array) of jobs
                                      that ran within one flush; ``b``: the first 6
                                      characters of the ULID; the hash's TTL is the
                                      status TTL, refreshed by each write
``{tag}:health``          hash        consumer -> time of its last write probe
``{tag}:idem:{k}``        string      job id enqueued under idempotency key ``k``
``{tag}:lane:{name}``     stream      the ready jobs of priority lane ``name`` (all
                                      but the default lane, which is ``{stream}``)
``{tag}:started``         hash        consumer -> "<entry id> <token>": the last entry
                                      it started, and which process (crash accounting)
``{tag}:solo``            hash        consumer -> "<entry id> <token>": the suspect it
                                      runs right now
``{tag}:waiting``         sorted set  status key of a job someone waits for -> when the
                                      longest such wait ends (epoch ms)
``{tag}:settled``         stream      ``key <status key> state <state>``: an outcome of a
                                      job in ``waiting``, for the waiters (capped)
``{tag}:crashes``         hash        entry id -> deaths of workers that had started it
                                      (only entries that crashed one)
``{lane}:started``,       hash        the same three records for the entries of a lane
``{lane}:solo``,                      stream ``{lane}`` = ``{tag}:lane:{name}`` (entry
``{lane}:crashes``                    ids are per stream: see `QueueKeys.of_stream`)
========================  ==========  ===============================================

A `QueueKeys` is one slot: one stream with its lanes and keys. A partitioned queue is
N of them (`partition_streams`): partition 0 is the queue's stream, partition ``i`` a
stream of its own name chosen so that the N tags fall in the N equal ranges of the slot
space, one each.

Before 0.2 the derived keys had no hash tag (``jobs:work:delayed``, ...) and the dead
letters defaulted to ``jobs:dead``; `LegacyKeys` names them for ``jobqueue
migrate-keys`` (`jobqueue.core.migrate`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

DEFAULT_STREAM = "jobs:work"
DEFAULT_GROUP = "workers"
ULID_CHARS = 26
DONE_BUCKET_CHARS = 6
"""A ULID's first 6 characters are its time in units of 2**20 ms (~17.5 minutes)."""
LEGACY_DEAD_STREAM = "jobs:dead"
"""The dead-letter stream's default before 0.2; still accepted as ``dead_stream``."""


def hash_tag(name: str) -> str | None:
    """The part of ``name`` Redis Cluster hashes when it has one (the text between the
    first ``{`` and the first ``}`` after it, if not empty), else None."""
    start = name.find("{")
    if start < 0:
        return None
    end = name.find("}", start + 1)
    if end <= start + 1:
        return None
    return name[start + 1 : end]


def check_stream_name(stream: str) -> str:
    """``stream`` when its queue's keys can share its slot, else ValueError saying why.

    A name with a ``}`` but no hash tag (``x{}y``) cannot be wrapped in a tag that
    hashes like it: a tag ends at its first ``}``."""
    if not stream:
        raise ValueError("the stream name must not be empty")
    if hash_tag(stream) is None and "}" in stream:
        raise ValueError(
            f"stream name {stream!r} has a '}}' but no hash tag: its keys could not share "
            "its Redis Cluster slot (use a name without braces, or with a tag like {name})"
        )
    return stream


def slot_of(key: str) -> int:
    """The Redis Cluster hash slot of ``key`` (0..16383)."""
    return int(key_slot(key.encode("utf-8", "surrogateescape")))


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The Redis keys of one queue (of one partition of it): one Cluster slot."""

    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP
    dead_stream: str = ""
    """The dead-letter stream; empty (the default) means ``{tag}:dead``, in the slot."""

    def __post_init__(self) -> None:
        check_stream_name(self.stream)

    @property
    def tag(self) -> str:
        """The prefix every derived key starts with; it hashes to the stream's slot."""
        return self.stream if hash_tag(self.stream) is not None else f"{{{self.stream}}}"

    @property
    def dead(self) -> str:
        """Stream of dead letters."""
        return self.dead_stream or f"{self.tag}:dead"

    @property
    def delayed(self) -> str:
        """Sorted set of delayed jobs and retries waiting out their backoff."""
        return f"{self.tag}:delayed"

    @property
    def delayed_jobs(self) -> str:
        """Hash from job id to the JSON-encoded stream fields of each delayed job."""
        return f"{self.tag}:delayed:jobs"

    def status(self, job_id: str) -> str:
        """Hash with the status record of one job."""
        return f"{self.tag}:job:{job_id}"

    @property
    def status_prefix(self) -> str:
        """Prefix of every status record (for scans; scripts get whole keys in KEYS)."""
        return f"{self.tag}:job:"

    @property
    def queued(self) -> str:
        """Hash from job id to stream entry id of each job the client enqueued that waits
        in the stream (no key of its own: see docs/internals.md, status records)."""
        return f"{self.tag}:queued"

    def done(self, job_id: str) -> str | None:
        """Hash holding the success record of ``job_id`` among those enqueued in the same
        ~17 minutes (the first 6 characters of a ULID), or None for an id that is not
        26 characters long (its record is its own key)."""
        if len(job_id) != ULID_CHARS:
            return None
        return f"{self.tag}:done:{job_id[:DONE_BUCKET_CHARS]}"

    @property
    def done_prefix(self) -> str:
        """Prefix of the success-record hashes (for scans)."""
        return f"{self.tag}:done:"

    @property
    def health(self) -> str:
        """Hash each worker writes to probe that Redis takes writes (expires)."""
        return f"{self.tag}:health"

    def idempotency(self, key: str) -> str:
        """String holding the job id first enqueued under an idempotency key."""
        return f"{self.tag}:idem:{key}"

    @property
    def started(self) -> str:
        """Hash consumer -> last entry id it started and its process token
        (`jobqueue.worker.crashes`)."""
        return f"{self.tag}:started"

    @property
    def solo(self) -> str:
        """Hash consumer -> the suspect entry it runs now, and its process token."""
        return f"{self.tag}:solo"

    @property
    def crashes(self) -> str:
        """Hash entry id -> how often a worker that had started it died."""
        return f"{self.tag}:crashes"

    @property
    def waiting(self) -> str:
        """Sorted set status key -> end of the longest wait for it (epoch ms): the jobs
        whose outcome is announced on `settled` (`jobqueue.core.waiting`)."""
        return f"{self.tag}:waiting"

    @property
    def settled(self) -> str:
        """Stream of the outcomes of jobs in `waiting`, which waiters block on."""
        return f"{self.tag}:settled"

    def lane(self, name: str) -> str:
        """Stream of a priority lane other than the default one (which is ``stream``)."""
        return f"{self.tag}:lane:{name}"

    def of_stream(self, stream: str) -> QueueKeys:
        """The keys kept per stream for ``stream``, one of this queue's lane streams:
        its consumer group and crash accounting (``started``, ``solo``, ``crashes``),
        which name entries by id, and entry ids repeat across streams. For the queue's
        own stream that is this object; a lane stream ``{tag}:lane:<name>`` has its own
        (``{tag}:lane:<name>:started``, ...), in the same slot. Every other key (status,
        delayed, dead letters, ...) is the queue's."""
        if stream == self.stream:
            return self
        return QueueKeys(stream, self.group, self.dead)

    def limit_rate(self, job_type: str) -> str:
        """String: the rate limiter's next free start of ``job_type`` (GCRA's theoretical
        arrival time, Redis-clock milliseconds)."""
        return f"{self.tag}:limit:{job_type}:rate"

    def limit_reserved(self, job_type: str) -> str:
        """Sorted set: job id -> the start (ms) reserved for a rate-limited job that waits
        in the delayed set for its turn."""
        return f"{self.tag}:limit:{job_type}:reserved"

    def limit_leases(self, job_type: str) -> str:
        """Sorted set: lease (entry id) -> expiry (ms) of each running job of
        ``job_type`` under a concurrency limit; a dead worker's leases expire."""
        return f"{self.tag}:limit:{job_type}:leases"

    @property
    def single_slot(self) -> bool:
        """Whether the dead-letter stream hashes with the queue (Redis Cluster needs it)."""
        return slot_of(self.dead) == slot_of(self.stream)

    @property
    def legacy(self) -> LegacyKeys:
        """The names this queue's keys had before 0.2."""
        return LegacyKeys(self.stream)


@dataclass(frozen=True, slots=True)
class LegacyKeys:
    """Key names before 0.2: derived keys without a hash tag, dead letters ``jobs:dead``."""

    stream: str

    @property
    def dead(self) -> str:
        return LEGACY_DEAD_STREAM

    @property
    def delayed(self) -> str:
        return f"{self.stream}:delayed"

    @property
    def delayed_jobs(self) -> str:
        return f"{self.stream}:delayed:jobs"

    @property
    def status_prefix(self) -> str:
        return f"{self.stream}:job:"

    @property
    def idempotency_prefix(self) -> str:
        return f"{self.stream}:idem:"


def partition_streams(stream: str, partitions: int) -> list[str]:
    """The stream names of a queue split into ``partitions`` partitions.

    Partition 0 is ``stream`` itself (what existing producers write to). The slot space
    is cut into ``partitions`` equal ranges; partition 0 falls in some range ``k``, and
    partition ``i`` is ``{stream}#{i}`` (the tag gets the suffix when the stream has a
    tag of its own: ``{tenant#1}:work``) with the smallest suffix ``.n`` that puts its
    slot in the middle half of range ``k + i`` (modulo ``partitions``). So every range
    holds one partition, and a cluster whose primaries own equal slot ranges (what
    ``redis-cli --cluster create`` makes) gets its share on every primary: with as many
    partitions as primaries, one each (the middle half keeps clear of the ranges' ends,
    which such a cluster rounds). The names depend only on ``stream`` and
    ``partitions``: every component computes the same ones.
    """
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    return list(_partition_streams(stream, partitions))


@functools.lru_cache(maxsize=64)
def _partition_streams(stream: str, partitions: int) -> tuple[str, ...]:
    # Every client, worker engine and operator poll asks: the salt search runs once.
    width = REDIS_CLUSTER_HASH_SLOTS / partitions
    home = int(slot_of(stream) // width)
    names = [stream]
    for i in range(1, partitions):
        start = ((home + i) % partitions) * width
        low, high = start + width / 4, start + 3 * width / 4
        salt = 0
        while True:
            name = _partition_name(stream, f"{i}.{salt}" if salt else str(i))
            if low <= slot_of(name) < high:
                names.append(name)
                break
            salt += 1
    return tuple(names)


def _partition_name(stream: str, suffix: str) -> str:
    # The suffix must change what the name hashes: inside its own tag when it has one.
    tag = hash_tag(stream)
    if tag is None:
        return f"{stream}#{suffix}"
    return stream.replace(f"{{{tag}}}", f"{{{tag}#{suffix}}}", 1)
