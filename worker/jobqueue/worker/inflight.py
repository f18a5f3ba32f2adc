"""The jobs this worker holds: delivered to it and not yet acknowledged.

This is the backpressure: the reader asks for at most `InFlight.free` entries, every
entry it gets is registered here at once, and a slot is released only when the entry's
outcome is acknowledged in Redis. A request that may deliver entries (a read, a drain,
a reclaim) reserves its slots before it goes out and holds them until its entries are
registered, so two of them on the wire at once (the reader's read-ahead and a reclaim
sweep) never both count the same free slots. So the worker's pending list never holds
more than ``concurrency`` entries, whatever the handlers do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jobqueue.core.wire import Job

if TYPE_CHECKING:
    from jobqueue.worker.lanes import LaneStream


class Delivery:
    """One entry delivered to this worker."""

    __slots__ = (
        "cancel_requested",
        "crashes",
        "deadline",
        "entry_id",
        "fields",
        "handler_running",
        "job",
        "key",
        "lane",
        "task",
        "timed_out",
)  # fmt: skip

    def __init__(
        self,
        entry_id: str,
        fields: dict[str, str],
        job: Job | None = None,
        lane: LaneStream | None = None,
    ) -> None:
        self.entry_id = entry_id
        self.fields = fields
        self.job = job
        """The decoded job; None for a malformed entry."""
        self.lane = lane
        """The lane stream it came from; None: the queue's own stream."""
        self.key = entry_id if lane is None else lane.prefix + entry_id
        """Its key in `InFlight` (and its limiter lease): the entry id, prefixed by its
        lane for a lane stream other than the queue's own (ids repeat across streams)."""
        self.task: asyncio.Task[None] | None = None
        self.deadline = 0.0
        """`time.monotonic` after which the running handler is cancelled as timed out."""
        self.timed_out = False
        self.handler_running = False
        """True while the handler runs; only then may a cancellation request stop it."""
        self.cancel_requested = False
        """Set when the client asked to cancel this job (see docs/internals.md)."""
        self.crashes = 0
        """Workers that died running it (`crashes`): above 0 it is a suspect (`solo`)."""


@dataclass(slots=True)
class InFlight:
    """Capacity accounting plus the deliveries by `Delivery.key` (the entry id without
    lanes)."""

    limit: int
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    reserved: int = 0
    """Slots held for requests on the wire that may deliver entries."""
    _room: asyncio.Event = field(default_factory=asyncio.Event)
    _empty: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._room.set()
        self._empty.set()

    @property
    def count(self) -> int:
        return len(self.deliveries)

    @property
    def free(self) -> int:
        """How many more entries this worker may take now."""
        return max(0, self.limit - len(self.deliveries) - self.reserved)

    def __contains__(self, key: str) -> bool:
        return key in self.deliveries

    def add(self, delivery: Delivery) -> None:
        self.deliveries[delivery.key] = delivery
        self._empty.clear()
        if len(self.deliveries) + self.reserved >= self.limit:
            self._room.clear()

    def release(self, keys: list[str]) -> None:
        """Free the slots of acknowledged (or abandoned) entries, by `Delivery.key`."""
        pop = self.deliveries.pop
        for key in keys:
            pop(key, None)
        if len(self.deliveries) + self.reserved < self.limit:
            self._room.set()
        if not self.deliveries:
            self._empty.set()

    def reserve(self, slots: int) -> None:
        """Hold ``slots`` for a request that may deliver that many entries."""
        self.reserved += slots
        if len(self.deliveries) + self.reserved >= self.limit:
            self._room.clear()

    def reserve_free(self) -> int:
        """Reserve every free slot; returns how many."""
        slots = self.free
        self.reserve(slots)
        return slots

    def unreserve(self, slots: int) -> None:
        """The request's entries are registered (or it failed): drop its hold."""
        self.reserved -= slots
        if len(self.deliveries) + self.reserved < self.limit:
            self._room.set()

    async def wait_for_room(self) -> None:
        await self._room.wait()

    async def wait_until_empty(self) -> None:
        await self._empty.wait()
