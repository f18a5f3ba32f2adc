"""Reading a queue's priority lanes (`jobqueue.core.lanes`): one stream per lane.

Every lane stream has the queue's consumer group, and everything the worker does per
stream (acknowledge, reclaim, heartbeat claims, drain of its own pending entries, trim,
crash accounting, the burst check) is done per lane stream. A `LaneStream` is one of
them, with its crash ledger (entry ids repeat across streams, so crash records are kept
per stream, `QueueKeys.of_stream`) and the prefix that makes its entry ids unique inside
the worker (`Delivery.key`): none for the queue's own stream, ``<name>/`` for the others.

Reads take the lanes in one script call (`READ_LANES`): a non-blocking ``XREADGROUP``
per lane, highest first, until the free slots are filled, so a read costs one round trip
whatever the number of lanes, and strict order holds within every read. Only when every
lane is empty does the reader block (`Reader`). In weighted mode a `WeightedOrder` gives
each read a first pass of lanes and caps by owed share (deficit counting), then the same
script fills what is left highest first, so no slot stays idle while a lane has work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import Lanes
from jobqueue.worker.crashes import CrashLedger

EPSILON = 1e-9

# KEYS: the lane streams, highest first. ARGV: group, consumer, count, then (weighted
# mode) pairs lane index (1-based), cap: a first pass reading at most cap entries of each
# lane in that order. Then every lane not found empty, highest first, for what is left.
# Returns lane index, entries (as XREADGROUP gives them), ... for each read that got some;
# when none did: 0, then per lane the id of its last entry ('0-0' if it has none), after
# which an XREAD waits for a new entry (every older one was delivered to the group).
READ_LANES = """#!lua
local group, me = ARGV[1], ARGV[2]
local left = tonumber(ARGV[3])
local out, empty = {}, {}
local function take(i, n)
  local reply = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', n, 'STREAMS', KEYS[i], '>')
  if not reply then
    empty[i] = true
    return
  end
  local rows = reply[1][2]
  if #rows < n then empty[i] = true end
  out[#out + 1] = i
  out[#out + 1] = rows
  left = left - #rows
end
for a = 4, #ARGV, 2 do
  if left <= 0 then break end
  take(tonumber(ARGV[a]), math.min(tonumber(ARGV[a + 1]), left))
end
for i = 1, #KEYS do
  if left <= 0 then break end
  if not empty[i] then take(i, left) end
end
if #out > 0 then return out end
local after = {0}
for i = 1, #KEYS do
  local last = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)
  after[i + 1] = (last[1] and last[1][1]) or '0-0'
end
return after
"""


@dataclass(frozen=True, slots=True, eq=False)
class LaneStream:
    """One stream a worker reads: a lane's, or the queue's own without lanes."""

    index: int
    """Position among the lanes, highest first (0 without lanes)."""
    name: str
    """The lane's name ("" without lanes): the ``lane`` label of metrics."""
    keys: QueueKeys
    """The per-stream keys (`QueueKeys.of_stream`): ``keys.stream`` is this stream."""
    prefix: str
    """Put before an entry id to make it unique in the worker: "" for the queue's own
    stream (so a queue without lanes keys its deliveries by entry id, as always)."""
    ledger: CrashLedger

    @property
    def stream(self) -> str:
        return self.keys.stream


def lane_streams(
    redis: AsyncRedis, keys: QueueKeys, lanes: Lanes, consumer: str
) -> list[LaneStream]:
    """The streams one worker of ``keys`` reads, highest lane first; one (the queue's
    stream, named "") without lanes."""
    if not lanes:
        return [LaneStream(0, "", keys, "", CrashLedger(redis, keys, consumer))]
    out: list[LaneStream] = []
    for index, lane in enumerate(lanes.lanes):
        stream_keys = keys.of_stream(lanes.stream(keys, lane))
        prefix = "" if stream_keys is keys else f"{lane.name}/"
        ledger = CrashLedger(redis, stream_keys, consumer)
        out.append(LaneStream(index, lane.name, stream_keys, prefix, ledger))
    return out


class WeightedOrder:
    """Which lanes a weighted read serves first, and how many of each (deficit counting).

    Each read of ``count`` slots credits every lane ``count * weight / total``; the read
    first takes up to the whole part of its credit from each lane, most owed first, and
    the credit pays for what it took. A lane found empty loses its credit (no banking
    while idle). So when every lane is backlogged each lane's share of what the reads
    take converges to its weight's share, a backlogged lane waits about ``total /
    weight`` one-slot reads for its turn (plus at most one read per lane owed more at
    that moment), and a lane that cannot use its share leaves it to the others (the
    script's second pass, highest first).
    """

    def __init__(self, weights: Sequence[int]) -> None:
        total = sum(weights)
        self.shares = [w / total for w in weights]
        self.credit = [0.0] * len(weights)

    def plan(self, count: int) -> list[tuple[int, int]]:
        """The first pass of one read of ``count`` slots: (lane index, cap), in order."""
        credit = self.credit
        for i, share in enumerate(self.shares):
            credit[i] += share * count
        order = sorted(range(len(credit)), key=lambda i: -credit[i])
        # EPSILON: ten credits of 0.1 make one slot, not 0.999...
        caps = [(i, int(credit[i] + EPSILON)) for i in order]
        return [(i, cap) for i, cap in caps if cap > 0]

    def settle(self, count: int, plan: list[tuple[int, int]], got: Sequence[int]) -> None:
        """Charge a read's plan with what each lane gave (``got`` per lane, both passes):
        the script's first pass took ``min(got, asked)`` of each lane, where ``asked`` is
        its cap bounded by the slots still free at its turn."""
        left = count
        for i, cap in plan:
            asked = min(cap, max(left, 0))
            if asked <= 0:
                continue
            first = min(got[i], asked)
            if first < asked:
                self.credit[i] = 0.0  # empty: no credit kept while it has no work
            else:
                self.credit[i] -= first
            left -= first

    def args(self, plan: list[tuple[int, int]]) -> list[int]:
        """The plan as `READ_LANES` arguments (1-based lane indexes)."""
        out: list[int] = []
        for i, cap in plan:
            out += (i + 1, cap)
        return out
