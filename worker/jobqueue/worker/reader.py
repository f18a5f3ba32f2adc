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
meanwhile).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError, ResponseError

from jobqueue.core.keys import QueueKeys
from jobqueue.worker import scripts
from jobqueue.worker.hot_connection import Command, HotConnection
from jobqueue.worker.inflight import InFlight
from jobqueue.worker.outcomes import Flush, Outcomes

Entry = tuple[str, dict[str, str], int]
"""(entry id, fields, delivery count). Fields are empty for an entry deleted meanwhile."""
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


async def delivery_counts(
    redis: AsyncRedis, keys: QueueKeys, entry_ids: list[str]
) -> dict[str, int]:
    """How often each entry was delivered (``XPENDING`` per id, one pipeline)."""
    async with redis.pipeline(transaction=False) as pipe:
        for entry_id in entry_ids:
            pipe.xpending_range(keys.stream, keys.group, min=entry_id, max=entry_id, count=1)
        replies: list[list[dict[str, Any]]] = await pipe.execute()
    return {row["message_id"]: int(row["times_delivered"]) for rows in replies for row in rows}


def new_entries(reply: Any) -> list[Entry]:
    """The entries of an ``XREADGROUP`` reply (RESP2, one stream), delivered once."""
    if not reply:
        return []
    entries: list[Entry] = []
    for entry_id, flat in reply[0][1]:
        pairs = iter(flat or ())  # zip(pairs, pairs): name, value
        entries.append((entry_id, dict(zip(pairs, pairs)), 1))  # noqa: B905
    return entries


@dataclass(slots=True)
class _Read:
    """A read on the wire, with the flush it carries."""

    replies: asyncio.Future[list[Any]]
    flush: Flush | None
    count: int


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
    ) -> None:
        self.redis = redis
        self.hot = hot
        self.keys = keys
        self.consumer = consumer
        self.inflight = inflight
        self.block_ms = block_ms
        self.dispatch = dispatch
        self.outcomes = outcomes
        self.batch_limit = max(1, (inflight.limit + 1) // 2)
        """Most entries one read asks for: half the capacity, so one batch can run
        while the next is on its way."""
        self._ahead: _Read | None = None

    async def drain_own(self, wait_for_room: Callable[[], Awaitable[bool]]) -> int:
        """Deliver this consumer's pending entries again (after a restart); returns
        how many. ``wait_for_room`` returns False when the worker is stopping."""
        cursor, total = "0", 0
        while await wait_for_room():
            reply: Any = await self.redis.xreadgroup(
                self.keys.group,
                self.consumer,
                {self.keys.stream: cursor},
                count=self.inflight.free,
            )
            rows: list[tuple[str, dict[str, str] | None]] = reply[0][1] if reply else []
            if not rows:
                return total
            cursor = rows[-1][0]
            fresh = [(i, f or {}) for i, f in rows if i not in self.inflight]
            counts = await delivery_counts(self.redis, self.keys, [i for i, _ in fresh])
            await self.dispatch([(i, f, counts.get(i, 1)) for i, f in fresh])
            total += len(fresh)
        return total

    @property
    def reading_ahead(self) -> bool:
        """A read is on the wire whose entries `read_new` takes next."""
        return self._ahead is not None

    async def read_new(self, *, read_ahead: bool = True) -> int:
        """Take one batch of never-delivered entries (the read sent ahead, or a new
        one) and dispatch it; returns how many arrived. If the batch was full and
        ``read_ahead``, the next read is on the wire before the batch is dispatched."""
        read, self._ahead = self._ahead, None
        if read is None:
            await self.hot.connect()
            read = self._send(arriving=0, may_block=True)
            if read is None:
                return 0
        reply, landed = await self._receive(read)
        arrived = len(reply[0][1]) if reply else 0
        try:
            if read_ahead and arrived and arrived == read.count:
                # First thing: Redis starts on the next batch. The flush that just landed
                # frees its slots right after (bookkeeping), so they count here already.
                self._ahead = self._send_ahead(arrived, landed.freed if landed else 0)
        finally:
            if landed is not None:
                self.outcomes.release(landed)
        await self.dispatch(new_entries(reply))
        return arrived

    def abandon(self) -> None:
        """Forget a read sent ahead (the loop restarts): its flush is queued again and
        the connection dropped; entries it delivered stay pending for `drain_own`."""
        read, self._ahead = self._ahead, None
        if read is not None:
            self.hot.close()
            read.replies.cancel()
            if read.flush is not None:
                self.outcomes.put_back(read.flush)

    def _send_ahead(self, arriving: int, landed: int) -> _Read | None:
        try:
            return self._send(arriving, may_block=False, landed=landed)
        except ConnectionError:
            return None  # the next read_new reconnects, or reports the outage

    def _send(self, arriving: int, *, may_block: bool, landed: int = 0) -> _Read | None:
        """Send the queued flush (if any) and a read for the slots free once it,
        ``arriving`` entries, and ``landed`` slots about to be freed are counted;
        blocking only when it carries no flush."""
        flush = self.outcomes.take_flush()
        count = self.inflight.free - arriving + landed + (flush.freed if flush else 0)
        count = min(count, self.batch_limit)
        commands: list[Command] = []
        if flush is not None:
            commands.append(("EVAL", scripts.FLUSH, len(flush.keys), *flush.keys, *flush.args))
        if count > 0:
            commands.append(self._xreadgroup(count, block=may_block and flush is None))
        if not commands:
            return None
        try:
            replies = self.hot.send(*commands)
        except BaseException:
            if flush is not None:
                self.outcomes.put_back(flush)
            raise
        return _Read(replies, flush, max(count, 0))

    async def _receive(self, read: _Read) -> tuple[Any, Flush | None]:
        """The read's ``XREADGROUP`` reply, and its flush, landed but not released."""
        try:
            replies = await self.hot.wait(read.replies, self.block_ms / 1000 + REPLY_MARGIN_S)
        except BaseException:
            if read.flush is not None:
                self.outcomes.put_back(read.flush)
            raise
        if read.flush is not None:
            self.outcomes.landed(read.flush, replies[0])
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
