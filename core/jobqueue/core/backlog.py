"""Sampling a queue: how much work waits, and where.

``lag`` is the number of entries no consumer of the group has been given yet. Redis
reports it in ``XINFO GROUPS``, but not always usefully: after ``XDEL`` past a group's
position (or for a group created at ``$`` or an arbitrary id) the field is NULL, and
after ``XTRIM`` removes undelivered entries it is *stale* (still counts the trimmed
entries, so it can exceed the stream's length). ``XPENDING`` alone only counts what was
already delivered. So lag is derived in this order, and the sample says which rule won:

1. ``empty``: the stream has no entries, so nothing waits;
2. ``caught-up``: the group's ``last-delivered-id`` is at or past the last entry: 0;
3. ``all-after``: it is before the first entry (everything it had read was trimmed):
   every entry waits, lag = length (this is what corrects a stale XTRIM lag);
4. ``group``: ``XINFO GROUPS`` ``lag`` when Redis knows it, clamped to the length;
5. ``counted``: entries after ``last-delivered-id``, counted by a bounded
   server-side scan (exact up to `COUNT_CAP` entries);
6. ``estimated``: ``entries-added - entries-read`` when the scan hit its cap, clamped
   between the cap and the length (an upper bound: it may include deleted entries).

Rules 1-3 are exact and cost nothing beyond ``XINFO STREAM``. A group that does not exist
yet has every entry of the stream as lag (``no-group``), so the first job wakes a queue
scaled to zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from jobqueue.core.keys import QueueKeys

COUNT_CAP = 10_000
"""Most entries the fallback lag count scans in one call (keeps Redis responsive)."""

# Counts entries strictly after ARGV[1], up to ARGV[2] of them, in chunks of 1000.
_COUNT_AFTER = """#!lua flags=no-writes
local start = '(' .. ARGV[1]
local cap = tonumber(ARGV[2])
local counted = 0
while counted < cap do
  local batch = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 1000)
  local n = #batch
  if n == 0 then return counted end
  counted = counted + n
  start = '(' .. batch[n][1]
end
return counted
"""


@dataclass(frozen=True, slots=True)
class GroupSample:
    """One consumer group of the stream, as ``XINFO GROUPS`` and ``XINFO CONSUMERS`` see it."""

    name: str
    consumers: int
    pending: int
    last_delivered_id: str
    entries_read: int | None
    lag: int
    lag_source: str
    """``empty``, ``caught-up``, ``all-after``, ``group``, ``counted``, ``estimated`` or
    ``no-group`` (see the module docstring)."""
    consumer_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueSample:
    """A snapshot of one queue. Counts are in jobs."""

    stream: str
    group: str
    length: int
    entries_added: int
    lag: int
    """Entries the queue's group has not delivered yet."""
    pending: int
    """Entries delivered to a consumer and not acknowledged yet (running or orphaned)."""
    delayed: int
    """Delayed jobs and retries waiting out their backoff."""
    dead_letters: int
    lag_source: str
    groups: tuple[GroupSample, ...] = field(default=())
    oldest_waiting_id: str | None = None
    """Entry id of the oldest entry the group has not delivered yet; None when none waits."""

    @property
    def backlog(self) -> int:
        """Work not finished: waiting (lag) plus delivered but unacknowledged (pending)."""
        return self.lag + self.pending

    def oldest_waiting_age_s(self, now_s: float) -> float:
        """Seconds the oldest undelivered entry has waited at ``now_s`` (`time.time`),
        from the time in its id (when Redis added it); 0 when nothing waits."""
        if self.oldest_waiting_id is None:
            return 0.0
        added_ms, _ = parse_entry_id(self.oldest_waiting_id)
        return max(0.0, now_s - added_ms / 1000)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "group": self.group,
            "length": self.length,
            "entriesAdded": self.entries_added,
            "lag": self.lag,
            "lagSource": self.lag_source,
            "pending": self.pending,
            "delayed": self.delayed,
            "deadLetters": self.dead_letters,
            "oldestWaitingId": self.oldest_waiting_id,
            "consumerGroups": [
                {
                    "name": g.name,
                    "consumers": g.consumers,
                    "consumerNames": list(g.consumer_names),
                    "pending": g.pending,
                    "lastDeliveredId": g.last_delivered_id,
                    "entriesRead": g.entries_read,
                    "lag": g.lag,
                    "lagSource": g.lag_source,
                }
                for g in self.groups
            ],
        }


async def sample_queue(
    redis: Redis, keys: QueueKeys, *, with_consumers: bool = False
) -> QueueSample:
    """Read one snapshot of the queue ``keys`` names (a handful of commands, one round trip
    for the common case)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xinfo_stream(keys.stream)
        pipe.xinfo_groups(keys.stream)
        pipe.zcard(keys.delayed)
        pipe.xlen(keys.dead)
        stream_info, groups_info, delayed, dead = await pipe.execute(raise_on_error=False)
    if isinstance(stream_info, ResponseError):
        if "no such key" not in str(stream_info).lower():
            raise stream_info
        stream_info, groups_info = {"length": 0, "entries-added": 0}, []
    for result in (delayed, dead):
        if isinstance(result, Exception):
            raise result
    facts = StreamFacts.from_info(stream_info)
    length = facts.length
    groups = []
    for info in groups_info:
        groups.append(await _group_sample(redis, keys, info, facts, with_consumers))
    own = next((g for g in groups if g.name == keys.group), None)
    if own is None:
        own = GroupSample(keys.group, 0, 0, "0-0", None, length, "no-group")
    oldest = await _oldest_waiting(redis, keys.stream, own, facts)
    return QueueSample(
        stream=keys.stream,
        group=keys.group,
        length=length,
        entries_added=facts.entries_added,
        lag=own.lag,
        pending=own.pending,
        delayed=int(delayed),
        dead_letters=int(dead),
        lag_source=own.lag_source,
        groups=tuple(groups),
        oldest_waiting_id=oldest,
    )


async def _oldest_waiting(
    redis: Redis, stream: str, group: GroupSample, facts: StreamFacts
) -> str | None:
    """Id of the first entry after the group's position: the oldest waiting job. One
    ``XRANGE ... COUNT 1`` when jobs wait behind entries already delivered."""
    if group.lag == 0:
        return None
    if group.lag_source in ("all-after", "no-group"):
        return facts.first_id
    first = await redis.xrange(stream, f"({group.last_delivered_id}", "+", count=1)
    return str(first[0][0]) if first else None


async def _group_sample(
    redis: Redis, keys: QueueKeys, info: dict[str, Any], facts: StreamFacts, with_consumers: bool
) -> GroupSample:
    name = str(info["name"])
    entries_read = info.get("entries-read")
    lag, source = await group_lag(redis, keys.stream, info, facts)
    consumer_names: tuple[str, ...] = ()
    if with_consumers:
        consumers = await redis.xinfo_consumers(keys.stream, name)
        consumer_names = tuple(str(c["name"]) for c in consumers)
    return GroupSample(
        name=name,
        consumers=int(info.get("consumers", 0)),
        pending=int(info.get("pending", 0)),
        last_delivered_id=str(info.get("last-delivered-id", "0-0")),
        entries_read=None if entries_read is None else int(entries_read),
        lag=lag,
        lag_source=source,
        consumer_names=consumer_names,
    )


def parse_entry_id(entry_id: str) -> tuple[int, int]:
    """``"ms-seq"`` as a comparable pair; ``"ms"`` alone means sequence 0."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class StreamFacts:
    """What ``XINFO STREAM`` says about the stream's extent."""

    length: int
    entries_added: int
    first_id: str | None
    last_id: str | None

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> StreamFacts:
        length = int(info.get("length", 0))
        return cls(
            length=length,
            entries_added=int(info.get("entries-added", length)),
            first_id=_entry_id(info.get("first-entry")),
            last_id=_entry_id(info.get("last-entry")),
        )


def _entry_id(entry: Any) -> str | None:
    # redis-py gives (id, fields) for an entry, None for an empty stream.
    if not entry:
        return None
    return str(entry[0])


def exact_lag(facts: StreamFacts, last_delivered_id: str) -> tuple[int, str] | None:
    """Lag when the group's position alone decides it (rules 1-3), else None."""
    if facts.length == 0 or facts.first_id is None or facts.last_id is None:
        return 0, "empty"
    position = parse_entry_id(last_delivered_id)
    if position >= parse_entry_id(facts.last_id):
        return 0, "caught-up"
    if position < parse_entry_id(facts.first_id):
        return facts.length, "all-after"
    return None


async def group_lag(
    redis: Redis, stream: str, info: dict[str, Any], facts: StreamFacts
) -> tuple[int, str]:
    """(lag, source) of one group from its ``XINFO GROUPS`` entry; see the module docstring."""
    last_delivered = str(info.get("last-delivered-id", "0-0"))
    exact = exact_lag(facts, last_delivered)
    if exact is not None:
        return exact
    reported = info.get("lag")
    if reported is not None:
        return min(max(int(reported), 0), facts.length), "group"
    counted = int(await redis.eval(_COUNT_AFTER, 1, stream, last_delivered, COUNT_CAP))
    if counted < COUNT_CAP:
        return counted, "counted"
    entries_read = info.get("entries-read")
    if entries_read is None:
        return facts.length, "estimated"
    estimate = facts.entries_added - int(entries_read)
    return min(max(estimate, counted), facts.length), "estimated"
