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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError, ResponseError

from jobqueue.core.keys import QueueKeys
from jobqueue.worker import scripts
from jobqueue.worker.crashes import CrashLedger
from jobqueue.worker.hot_connection import Command, HotConnection
from jobqueue.worker.inflight import InFlight
from jobqueue.worker.outcomes import Flush, Outcomes

Entry = tuple[str, dict[str, str], int]
"""(entry id, fields, crashes): how often a worker died running it (`crashes`)."""
Dispatch = Callable[[list[Entry]], Awaitable[None]]
REPLY_MARGIN_S = 10.0
"""How much longer than its ``BLOCK`` a read may take before the connection is
considered hung."""


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
    entries: list[Entry] = []
    for entry_id, flat in reply[0][1]:
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
    """Index of the flush's reply (after the start record when one went first)."""


class Reader:
    """XREADGROUP for one consumer, bounded by the free capacity of `InFlight`."""

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
        ledger: CrashLedger,
    ) -> None:
        self.redis = redis
        self.hot = hot
        self.keys = keys
        self.consumer = consumer
        self.inflight = inflight
        self.block_ms = block_ms
        self.dispatch = dispatch
        self.outcomes = outcomes
        self.ledger = ledger
        self.batch_limit = max(1, (inflight.limit + 1) // 2)
        """Most entries one read asks for: half the capacity, so one batch can run
        while the next is on its way."""
        self._ahead: _Read | None = None

    async def drain_own(self, wait_for_room: Callable[[], Awaitable[bool]]) -> int:
        """Take this consumer's pending entries again (after a restart or a reconnect)
        and dispatch those not running here; returns how many. ``wait_for_room``
        returns False when the worker is stopping."""
        # Joins the group at once (as a read would): a blocking read on an empty stream
        # does not, and operators and probes look for the consumer.
        await self.redis.xgroup_createconsumer(self.keys.stream, self.keys.group, self.consumer)
        cursor, total = "-", 0
        while await wait_for_room():
            count = self.inflight.reserve_free()
            try:
                cursor, taken = await self.ledger.take_own(cursor, count)
                fresh = [entry for entry in taken if entry[0] not in self.inflight]
                await self.dispatch(fresh)
            finally:
                self.inflight.unreserve(count)
            total += len(fresh)
            if cursor == "0-0":
                self.ledger.drained()
                return total
        return total

    @property
    def reading_ahead(self) -> bool:
        """A read is on the wire whose entries `read_new` takes next."""
        return self._ahead is not None

    async def read_new(self, *, read_ahead: bool = True) -> int:
        """Take one batch of never-delivered entries (the read sent ahead, or a new
        one) and dispatch it; returns how many arrived. If the batch was full and
        ``read_ahead``, the next read is on the wire before the batch is dispatched.
        Either way the batch's start record goes out before its handlers run."""
        read, self._ahead = self._ahead, None
        if read is None:
            await self.hot.connect()
            read = self._send(may_block=True)
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
                    self._ahead = self._send_ahead(landed.freed if landed else 0, start)
                elif start is not None:
                    self._send_alone(start)
            finally:
                if landed is not None:
                    self.outcomes.release(landed)
            await self.dispatch(new_entries(reply))
        finally:
            self.inflight.unreserve(read.count)
        return arrived

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

    def _send_ahead(self, landed: int, start: Command | None) -> _Read | None:
        try:
            read = self._send(may_block=False, landed=landed, start=start)
            if read is None and start is not None:
                self._send_alone(start)
            return read
        except ConnectionError:
            return None  # the next read_new reconnects, or reports the outage

    def _send_alone(self, command: Command) -> None:
        """Write ``command`` without waiting for its reply (a start record: if it is
        lost with the connection, one crash of its batch goes uncounted)."""
        with contextlib.suppress(ConnectionError):
            self.hot.send(command).add_done_callback(_ignore_reply)

    def _send(
        self, *, may_block: bool, landed: int = 0, start: Command | None = None
    ) -> _Read | None:
        """Send ``start`` (a start record), the queued flush (if any) and a read for
        the slots free once the flush and ``landed`` slots about to be freed are
        counted; blocking only when it carries no flush. The slots the read asks for
        are reserved until `read_new` has dispatched its entries."""
        flush = self.outcomes.take_flush()
        inflight = self.inflight
        count = inflight.limit - inflight.count - inflight.reserved
        count = min(count + landed + (flush.freed if flush else 0), self.batch_limit)
        if flush is None and count <= 0:
            return None
        commands: list[Command] = [] if start is None else [start]
        if flush is not None:
            commands.append(("EVAL", scripts.FLUSH, len(flush.keys), *flush.keys, *flush.args))
        if count > 0:
            commands.append(self._xreadgroup(count, block=may_block and flush is None))
        try:
            replies = self.hot.send(*commands)
        except BaseException:
            if flush is not None:
                self.outcomes.put_back(flush)
            raise
        count = max(count, 0)
        inflight.reserve(count)
        return _Read(replies, flush, count, 0 if start is None else 1)

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
