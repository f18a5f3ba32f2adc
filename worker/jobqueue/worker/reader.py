"""Reading entries for this consumer: its own pending ones first, then new ones.

No policy lives here: the reader asks for at most the free capacity, hands every entry
with its delivery count to ``dispatch``, and leaves decoding, running and outcomes to
the caller.

New entries come over the worker's own `HotConnection`, and each read carries the
queued acknowledgement flush in the same write (Redis runs the flush first, so the
pending list never holds more than ``concurrency`` entries even though the read counts
the flush's slots as free). While the stream has entries the reader keeps one read
ahead: as soon as a batch arrives it sends the next read, for at most half the
capacity, before it dispatches the batch, so Redis serves the next batch and records
the last one's outcomes while this one runs. An empty stream ends the read-ahead; the
next read blocks up to ``block_ms`` and carries no flush (the acks loop sends those
meanwhile). Every batch's start record (`crashes`) goes out before the batch is
dispatched: first in the write of the next read, or alone. A read reserves the slots it
asks for until its entries are dispatched, so a reclaim sweep meanwhile cannot count
them as free.

With priority lanes (`lanes`) the read is one `READ_LANES` script call instead of the
``XREADGROUP`` (same pipelining: the flush and start records ride along, one read ahead
while the lanes have entries), dispatched lane by lane, highest first, each lane's start
record going to its own stream's ledger. When every lane is empty the reader blocks:
with a free slot for each lane, in one ``XREADGROUP COUNT 1 BLOCK`` over every lane
stream (it gets at most one entry per stream); with fewer, in an ``XREAD BLOCK`` after
each lane's last entry, which delivers nothing (the pending list stays within
``concurrency``) and wakes the reader to run the script again, so even a worker of one
slot waits on every lane at once and takes the highest entry there is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError, ResponseError

from jobqueue.core.keys import QueueKeys
from jobqueue.worker.hot_connection import Arg, Command, HotConnection
from jobqueue.worker.inflight import InFlight
from jobqueue.worker.lanes import READ_LANES, LaneStream, WeightedOrder
from jobqueue.worker.outcomes import Flush, Outcomes

Entry = tuple[str, dict[str, str], int]
"""(entry id, fields, crashes): how often a worker died running it (`crashes`)."""


class Dispatch(Protocol):
    """Starts the entries of one stream: ``lane``'s, or (None) the queue's own."""

    def __call__(
        self, entries: list[Entry], lane: LaneStream | None = None, /
    ) -> Awaitable[None]: ...


REPLY_MARGIN_S = 10.0
"""How much longer than its ``BLOCK`` a read may take before the connection is
considered hung."""


async def ensure_groups(redis: AsyncRedis, lanes: Sequence[LaneStream]) -> None:
    """`ensure_group` on every lane stream (the queue's one stream without lanes)."""
    for lane in lanes:
        await ensure_group(redis, lane.keys)


async def ensure_group(redis: AsyncRedis, keys: QueueKeys) -> None:
    """Create the consumer group (and the stream) unless it exists; from id 0 so jobs
    enqueued before the first worker started are delivered too."""
    try:
        await redis.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def new_entries(reply: Any) -> list[Entry]:
    """The entries of an ``XREADGROUP`` reply (RESP2, one stream), never started before."""
    if not reply:
        return []
    return _entries(reply[0][1])


def _entries(rows: list[Any]) -> list[Entry]:
    entries: list[Entry] = []
    for entry_id, flat in rows:
        pairs = iter(flat or ())  # zip(pairs, pairs): name, value
        entries.append((entry_id, dict(zip(pairs, pairs)), 0))  # noqa: B905
    return entries


@dataclass(slots=True)
class _Read:
    """A read on the wire, with the flush it carries and the slots it holds."""

    replies: asyncio.Future[list[Any]]
    flush: Flush | None
    count: int
    """Entries asked for: slots reserved in `InFlight` until they are dispatched."""
    flush_at: int
    """Index of the flush's reply (after the start records that went first)."""
    may_block: bool = False
    """The reader may block when this read finds every lane empty (lanes only: the
    script never blocks)."""
    plan: list[tuple[int, int]] | None = None
    """Weighted mode: the first pass this read asked the script for."""


class Reader:
    """XREADGROUP for one consumer, bounded by the free capacity of `InFlight`.

    ``lanes`` are the streams it reads, highest lane first (`lane_streams`): without
    lanes just the queue's stream, read as it always was. ``weights`` (one per lane)
    select weighted mode (`WeightedOrder`); None is strict order."""

    def __init__(
        self,
        redis: AsyncRedis,
        hot: HotConnection,
        keys: QueueKeys,
        consumer: str,
        inflight: InFlight,
        block_ms: int,
        dispatch: Dispatch,
        outcomes: Outcomes,
        lanes: Sequence[LaneStream],
        weights: Sequence[int] | None = None,
    ) -> None:
        self.redis = redis
        self.hot = hot
        self.keys = keys
        self.consumer = consumer
        self.inflight = inflight
        self.block_ms = block_ms
        self.dispatch = dispatch
        self.outcomes = outcomes
        self.streams = list(lanes)
        """Every stream this reader takes entries from, highest lane first."""
        self.ledger = self.streams[0].ledger
        """The crash ledger of the queue's one stream (without lanes)."""
        self.laned = len(self.streams) > 1
        """Reading several lane streams (`READ_LANES`) rather than one."""
        self.order = WeightedOrder(weights) if self.laned and weights is not None else None
        self._lane_keys = [lane.stream for lane in self.streams]
        self._by_stream = {lane.stream: lane for lane in self.streams}
        self.batch_limit = max(1, (inflight.limit + 1) // 2)
        """Most entries one read asks for: half the capacity, so one batch can run
        while the next is on its way."""
        self._ahead: _Read | None = None

    async def drain_own(self, wait_for_room: Callable[[], Awaitable[bool]]) -> int:
        """Take this consumer's pending entries again (after a restart or a reconnect),
        in every lane stream, and dispatch those not running here; returns how many.
        ``wait_for_room`` returns False when the worker is stopping."""
        # Joins the group at once (as a read would): a blocking read on an empty stream
        # does not, and operators and probes look for the consumer.
        for lane in self.streams:
            await self.redis.xgroup_createconsumer(lane.stream, self.keys.group, self.consumer)
        total = 0
        for lane in self.streams:
            drained, done = await self._drain_lane(lane, wait_for_room)
            total += drained
            if not done:
                break
        return total

    async def _drain_lane(
        self, lane: LaneStream, wait_for_room: Callable[[], Awaitable[bool]]
    ) -> tuple[int, bool]:
        """`drain_own` of one stream: (entries taken, whether it got to the end)."""
        cursor, total, prefix = "-", 0, lane.prefix
        while await wait_for_room():
            count = self.inflight.reserve_free()
            try:
                cursor, taken = await lane.ledger.take_own(cursor, count)
                fresh = [entry for entry in taken if prefix + entry[0] not in self.inflight]
                await self.dispatch(fresh, lane)
            finally:
                self.inflight.unreserve(count)
            total += len(fresh)
            if cursor == "0-0":
                lane.ledger.drained()
                return total, True
        return total, False

    @property
    def reading_ahead(self) -> bool:
        """A read is on the wire whose entries `read_new` takes next."""
        return self._ahead is not None

    async def read_new(self, *, read_ahead: bool = True) -> int:
        """Take one batch of never-delivered entries (the read sent ahead, or a new
        one) and dispatch it; returns how many arrived. If the batch was full and
        ``read_ahead``, the next read is on the wire before the batch is dispatched.
        Either way the batch's start record goes out before its handlers run."""
        if self.laned:
            return await self._read_lanes(read_ahead)
        read = await self._next_read()
        if read is None:
            return 0
        try:
            reply, landed = await self._receive(read)
            rows: list[Any] = reply[0][1] if reply else []
            arrived = len(rows)
            start = self.ledger.start_command(rows[-1][0]) if arrived else None
            try:
                if read_ahead and arrived and arrived == read.count:
                    # First thing: Redis starts on the next batch. The flush that just
                    # landed frees its slots right after (bookkeeping), so they count here.
                    starts = () if start is None else (start,)
                    self._ahead = self._send_ahead(landed.freed if landed else 0, starts)
                elif start is not None:
                    self._send_alone(start)
            finally:
                if landed is not None:
                    self.outcomes.release(landed)
            await self.dispatch(new_entries(reply))
        finally:
            self.inflight.unreserve(read.count)
        return arrived

    async def _next_read(self) -> _Read | None:
        """The read sent ahead, else a new one; None when there is no room and no flush
        to carry."""
        read, self._ahead = self._ahead, None
        if read is None:
            await self.hot.connect()
            read = self._send(may_block=True)
        return read

    async def _read_lanes(self, read_ahead: bool) -> int:
        """`read_new` over the lane streams: one script call takes the lanes highest
        first (or in the weighted order); only if every lane is empty does the reader
        block on all of them (`_wait_for_lanes`)."""
        read = await self._next_read()
        if read is None:
            return 0
        try:
            reply, landed = await self._receive(read)
            batches = self._lane_batches(reply, read.count, read.plan)
            if not batches and read.may_block and read.count > 0:
                if landed is not None:  # it landed: free its slots before the wait
                    self.outcomes.release(landed)
                    landed = None
                batches = await self._wait_for_lanes(read.count, reply)
            arrived = 0
            starts: list[Command] = []
            for lane, rows in batches:
                arrived += len(rows)
                starts.append(lane.ledger.start_command(rows[-1][0]))
            try:
                if read_ahead and arrived and arrived == read.count:
                    self._ahead = self._send_ahead(landed.freed if landed else 0, starts)
                elif starts:
                    self._send_alone(*starts)
            finally:
                if landed is not None:
                    self.outcomes.release(landed)
            for lane, rows in batches:
                await self.dispatch(_entries(rows), lane)
        finally:
            self.inflight.unreserve(read.count)
        return arrived

    def _lane_batches(
        self, reply: Any, count: int, plan: list[tuple[int, int]] | None
    ) -> list[tuple[LaneStream, list[Any]]]:
        """The rows of a `READ_LANES` reply by lane, highest lane first (a lane read in
        both passes gives one batch); settles the weighted plan."""
        rows_of: dict[int, list[Any]] = {}
        if reply and reply[0] != 0:
            for n in range(0, len(reply), 2):
                rows_of.setdefault(int(reply[n]) - 1, []).extend(reply[n + 1])
        if plan is not None and self.order is not None:
            got = [len(rows_of.get(i, ())) for i in range(len(self.streams))]
            self.order.settle(count, plan, got)
        return [(self.streams[i], rows_of[i]) for i in sorted(rows_of)]

    async def _wait_for_lanes(
        self, count: int, empty_reply: Any
    ) -> list[tuple[LaneStream, list[Any]]]:
        """Block until an entry arrives in any lane (at most ``block_ms``); the batches
        taken then. ``count`` slots are reserved for this read."""
        timeout_s = self.block_ms / 1000 + REPLY_MARGIN_S
        streams = self._lane_keys
        if count >= len(streams):
            # One entry a stream at most: within the slots this read reserved.
            group, consumer = self.keys.group, self.consumer
            command: Command = (
                "XREADGROUP", "GROUP", group, consumer, "COUNT", 1, "BLOCK", self.block_ms,
                "STREAMS", *streams, *(">",) * len(streams),
            )  # fmt: skip
            (reply,) = await self.hot.wait(self.hot.send(command), timeout_s)
            if isinstance(reply, Exception):
                raise reply
            batches = [(self._by_stream[stream], rows) for stream, rows in reply or ()]
            return sorted(batches, key=lambda batch: batch[0].index)
        # Fewer slots than lanes: wait without taking anything (XREAD), after the last
        # entry of each lane (every entry up to it was delivered: the script found none
        # undelivered), then take in order what the lanes hold.
        after = list(empty_reply[1:]) if empty_reply else ["$"] * len(streams)
        command = ("XREAD", "COUNT", 1, "BLOCK", self.block_ms, "STREAMS", *streams, *after)
        (woke,) = await self.hot.wait(self.hot.send(command), timeout_s)
        if isinstance(woke, Exception):
            raise woke
        if not woke:
            return []
        command, plan = self._lanes_command(count)
        (reply,) = await self.hot.wait(self.hot.send(command), timeout_s)
        if isinstance(reply, Exception):
            raise reply
        return self._lane_batches(reply, count, plan)

    def _lanes_command(self, count: int) -> tuple[Command, list[tuple[int, int]] | None]:
        """The `READ_LANES` call for ``count`` entries, and its weighted plan."""
        plan = self.order.plan(count) if self.order is not None else None
        keys = self._lane_keys
        args: list[Arg] = [self.keys.group, self.consumer, count]
        if plan is not None and self.order is not None:
            args += self.order.args(plan)
        return ("EVAL", READ_LANES, len(keys), *keys, *args), plan

    def abandon(self) -> None:
        """Forget a read sent ahead (the loop restarts): its flush is queued again and
        the connection dropped; entries it delivered stay pending for `drain_own`."""
        read, self._ahead = self._ahead, None
        if read is not None:
            self.hot.close()
            read.replies.cancel()
            self.inflight.unreserve(read.count)
            if read.flush is not None:
                self.outcomes.put_back(read.flush)

    def _send_ahead(self, landed: int, starts: Sequence[Command]) -> _Read | None:
        try:
            read = self._send(may_block=False, landed=landed, starts=starts)
            if read is None and starts:
                self._send_alone(*starts)
            return read
        except ConnectionError:
            return None  # the next read_new reconnects, or reports the outage

    def _send_alone(self, *commands: Command) -> None:
        """Write ``commands`` without waiting for their replies (start records: if they
        are lost with the connection, one crash of their batch goes uncounted)."""
        with contextlib.suppress(ConnectionError):
            self.hot.send(*commands).add_done_callback(_ignore_reply)

    def _send(
        self, *, may_block: bool, landed: int = 0, starts: Sequence[Command] = ()
    ) -> _Read | None:
        """Send ``starts`` (start records), the queued flush (if any) and a read for
        the slots free once the flush and ``landed`` slots about to be freed are
        counted; blocking only when it carries no flush. The slots the read asks for
        are reserved until `read_new` has dispatched its entries."""
        flush = self.outcomes.take_flush()
        inflight = self.inflight
        count = inflight.limit - inflight.count - inflight.reserved
        count = min(count + landed + (flush.freed if flush else 0), self.batch_limit)
        if flush is None and count <= 0:
            return None
        commands: list[Command] = list(starts)
        if flush is not None:
            commands.append(flush.command())
        plan = None
        if count > 0:
            if self.laned:
                command, plan = self._lanes_command(count)
                commands.append(command)
            else:
                commands.append(self._xreadgroup(count, block=may_block and flush is None))
        try:
            replies = self.hot.send(*commands)
        except BaseException:
            if flush is not None:
                self.outcomes.put_back(flush)
            raise
        count = max(count, 0)
        inflight.reserve(count)
        return _Read(replies, flush, count, len(starts), may_block, plan)

    async def _receive(self, read: _Read) -> tuple[Any, Flush | None]:
        """The read's ``XREADGROUP`` reply, and its flush, landed but not released."""
        try:
            replies = await self.hot.wait(read.replies, self.block_ms / 1000 + REPLY_MARGIN_S)
        except BaseException:
            if read.flush is not None:
                self.outcomes.put_back(read.flush)
            raise
        if read.flush is not None:
            self.outcomes.landed(read.flush, replies[read.flush_at])
        reply = replies[-1] if read.count else None
        if isinstance(reply, Exception):
            if read.flush is not None:
                self.outcomes.release(read.flush)
            raise reply
        return reply, read.flush

    def _xreadgroup(self, count: int, *, block: bool) -> Command:
        group, consumer, stream = self.keys.group, self.consumer, self.keys.stream
        if block:
            return (
                "XREADGROUP",
                "GROUP",
                group,
                consumer,
                "COUNT",
                count,
                "BLOCK",
                self.block_ms,
                "STREAMS",
                stream,
                ">",
            )
        return ("XREADGROUP", "GROUP", group, consumer, "COUNT", count, "STREAMS", stream, ">")


def _ignore_reply(future: asyncio.Future[list[Any]]) -> None:
    # Retrieved so asyncio does not log it: a lost start record only loses a count.
    if not future.cancelled():
        future.exception()
