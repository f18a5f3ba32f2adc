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

A queue with priority lanes (`jobqueue.core.lanes`) is one stream per lane, all read by
the same group: each lane is sampled as above (`LaneSample`, highest lane first) and the
queue's figures are their sums, which is what the autoscalers scale on. Delayed jobs and
dead letters are one set and one stream for all lanes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import NO_LANES, Lanes

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
class LaneSample:
    """One priority lane's stream: its length, and the queue's group on it."""

    name: str
    stream: str
    length: int
    entries_added: int
    lag: int
    pending: int
    lag_source: str
    groups: tuple[GroupSample, ...] = ()
    oldest_waiting_id: str | None = None

    @property
    def backlog(self) -> int:
        return self.lag + self.pending

    def oldest_waiting_age_s(self, now_s: float) -> float:
        """`QueueSample.oldest_waiting_age_s` of this lane."""
        return _age_s(self.oldest_waiting_id, now_s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stream": self.stream,
            "length": self.length,
            "lag": self.lag,
            "lagSource": self.lag_source,
            "pending": self.pending,
            "oldestWaitingId": self.oldest_waiting_id,
        }


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
    lanes: tuple[LaneSample, ...] = ()
    """Each priority lane, highest first; empty for a queue without lanes. The counts
    above are their sums (``groups``: the queue's own stream, the default lane)."""

    @property
    def backlog(self) -> int:
        """Work not finished: waiting (lag) plus delivered but unacknowledged (pending)."""
        return self.lag + self.pending

    @property
    def missing_group(self) -> bool:
        """Whether the queue's group is missing on its stream or on a lane's stream."""
        return self.lag_source == "no-group" or any(
            lane.lag_source == "no-group" for lane in self.lanes
        )

    def oldest_waiting_age_s(self, now_s: float) -> float:
        """Seconds the oldest undelivered entry has waited at ``now_s`` (`time.time`),
        from the time in its id (when Redis added it); 0 when nothing waits."""
        return _age_s(self.oldest_waiting_id, now_s)

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
            "lanes": [lane.as_dict() for lane in self.lanes],
        }


async def sample_queue(
    redis: Redis, keys: QueueKeys, *, lanes: Lanes = NO_LANES, with_consumers: bool = False
) -> QueueSample:
    """Read one snapshot of the queue ``keys`` names, every lane of ``lanes`` summed (a
    handful of commands per stream, one round trip for the common case)."""
    streams = lanes.streams(keys)
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xinfo_stream(stream)
            pipe.xinfo_groups(stream)
        pipe.zcard(keys.delayed)
        pipe.xlen(keys.dead)
        replies = await pipe.execute(raise_on_error=False)
    delayed, dead = replies[-2:]
    for result in (delayed, dead):
        if isinstance(result, Exception):
            raise result
    names = [lane.name for lane in lanes.lanes] or [""]
    samples = []
    for i, (name, stream) in enumerate(zip(names, streams, strict=True)):
        stream_info, groups_info = replies[2 * i], replies[2 * i + 1]
        samples.append(
            await _stream_sample(
                redis, keys, name, stream, stream_info, groups_info, with_consumers
            )
        )
    if not lanes:
        only = samples[0]
        return QueueSample(
            stream=keys.stream,
            group=keys.group,
            length=only.length,
            entries_added=only.entries_added,
            lag=only.lag,
            pending=only.pending,
            delayed=int(delayed),
            dead_letters=int(dead),
            lag_source=only.lag_source,
            groups=only.groups,
            oldest_waiting_id=only.oldest_waiting_id,
        )
    return _summed(keys, samples, int(delayed), int(dead))


def _summed(keys: QueueKeys, lanes: list[LaneSample], delayed: int, dead: int) -> QueueSample:
    """The queue's sample from its lanes' (counts summed, the oldest waiting entry of
    all; ``groups`` those of the queue's own stream, the default lane)."""
    sources = {lane.lag_source for lane in lanes}
    source = (
        "no-group" if "no-group" in sources else sources.pop() if len(sources) == 1 else "mixed"
    )
    waiting = [lane.oldest_waiting_id for lane in lanes if lane.oldest_waiting_id is not None]
    own = next((lane for lane in lanes if lane.stream == keys.stream), lanes[0])
    return QueueSample(
        stream=keys.stream,
        group=keys.group,
        length=sum(lane.length for lane in lanes),
        entries_added=sum(lane.entries_added for lane in lanes),
        lag=sum(lane.lag for lane in lanes),
        pending=sum(lane.pending for lane in lanes),
        delayed=delayed,
        dead_letters=dead,
        lag_source=source,
        groups=own.groups,
        oldest_waiting_id=min(waiting, key=parse_entry_id) if waiting else None,
        lanes=tuple(lanes),
    )


async def _stream_sample(
    redis: Redis,
    keys: QueueKeys,
    name: str,
    stream: str,
    stream_info: Any,
    groups_info: Any,
    with_consumers: bool,
) -> LaneSample:
    """The sample of one ready stream from its ``XINFO STREAM`` and ``XINFO GROUPS``."""
    if isinstance(stream_info, ResponseError):
        if "no such key" not in str(stream_info).lower():
            raise stream_info
        stream_info, groups_info = {"length": 0, "entries-added": 0}, []
    elif isinstance(groups_info, Exception):
        raise groups_info
    facts = StreamFacts.from_info(stream_info)
    groups = []
    for info in groups_info:
        groups.append(await _group_sample(redis, stream, info, facts, with_consumers))
    own = next((g for g in groups if g.name == keys.group), None)
    if own is None:
        own = GroupSample(keys.group, 0, 0, "0-0", None, facts.length, "no-group")
    return LaneSample(
        name=name,
        stream=stream,
        length=facts.length,
        entries_added=facts.entries_added,
        lag=own.lag,
        pending=own.pending,
        lag_source=own.lag_source,
        groups=tuple(groups),
        oldest_waiting_id=await _oldest_waiting(redis, stream, own, facts),
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
    redis: Redis, stream: str, info: dict[str, Any], facts: StreamFacts, with_consumers: bool
) -> GroupSample:
    name = str(info["name"])
    entries_read = info.get("entries-read")
    lag, source = await group_lag(redis, stream, info, facts)
    consumer_names: tuple[str, ...] = ()
    if with_consumers:
        consumers = await redis.xinfo_consumers(stream, name)
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


def _age_s(entry_id: str | None, now_s: float) -> float:
    """Seconds since Redis added ``entry_id`` (the time in the id); 0 for None."""
    if entry_id is None:
        return 0.0
    added_ms, _ = parse_entry_id(entry_id)
    return max(0.0, now_s - added_ms / 1000)


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
