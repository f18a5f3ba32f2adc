"""Reading entries for this consumer: its own pending ones first, then new ones.

No policy lives here: the reader asks for at most the free capacity, hands every entry
with its delivery count to ``dispatch``, and leaves decoding, running and outcomes to
the caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from jobqueue.core.keys import QueueKeys
from jobqueue.worker.inflight import InFlight
from jobqueue.worker.outcomes import Outcomes

Entry = tuple[str, dict[str, str], int]
"""(entry id, fields, delivery count). Fields are empty for an entry deleted meanwhile."""
Dispatch = Callable[[list[Entry]], Awaitable[None]]


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


class Reader:
    """XREADGROUP for one consumer, bounded by the free capacity of `InFlight`."""

    def __init__(
        self,
        redis: AsyncRedis,
        keys: QueueKeys,
        consumer: str,
        inflight: InFlight,
        block_ms: int,
        dispatch: Dispatch,
        outcomes: Outcomes,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.inflight = inflight
        self.block_ms = block_ms
        self.dispatch = dispatch
        self.outcomes = outcomes

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

    async def read_new(self) -> int:
        """One read of never-delivered entries, at most the free capacity; returns how
        many arrived. With successes to acknowledge it carries them and does not block
        (see `Outcomes.flush_with`); otherwise it blocks up to ``block_ms``."""
        if self.outcomes.ack_due:
            reply = await self.outcomes.flush_with(self._read_after_flush)
        elif self.inflight.free == 0:
            return 0
        else:
            reply = await self.redis.xreadgroup(
                self.keys.group,
                self.consumer,
                {self.keys.stream: ">"},
                count=self.inflight.free,
                block=self.block_ms,
            )
        if not reply:
            return 0
        rows: list[tuple[str, dict[str, str]]] = reply[0][1]
        await self.dispatch([(i, f, 1) for i, f in rows])
        return len(rows)

    def _read_after_flush(self, pipe: Pipeline, freed: int) -> bool:
        # Redis runs the flush first, so its pending list never holds more than
        # concurrency; the flush's slots are released before the entries are dispatched.
        count = self.inflight.free + freed
        if count == 0:
            return False  # COUNT 0 would mean no limit
        pipe.xreadgroup(self.keys.group, self.consumer, {self.keys.stream: ">"}, count=count)
        return True
