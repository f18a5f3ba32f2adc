"""The jobs this worker holds: delivered to it and not yet acknowledged.

This is the backpressure: the reader asks for at most `InFlight.free` entries, every
entry it gets is registered here at once, and a slot is released only when the entry's
outcome is acknowledged in Redis. So the worker's pending list never holds more than
``concurrency`` entries, whatever the handlers do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from jobqueue.core.wire import Job


@dataclass(slots=True, eq=False)
class Delivery:
    """One entry delivered to this worker."""

    entry_id: str
    fields: dict[str, str]
    job: Job | None = None
    """The decoded job; None for a malformed entry."""
    task: asyncio.Task[None] | None = None
    deadline: float = 0.0
    """`time.monotonic` after which the running handler is cancelled as timed out."""
    timed_out: bool = False
    handler_running: bool = False
    """True while the handler runs; only then may a cancellation request stop it."""
    cancel_requested: bool = False
    """Set when the client asked to cancel this job (see docs/internals.md)."""


@dataclass(slots=True)
class InFlight:
    """Capacity accounting plus the deliveries by entry id."""

    limit: int
    deliveries: dict[str, Delivery] = field(default_factory=dict)
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
        return max(0, self.limit - len(self.deliveries))

    def __contains__(self, entry_id: str) -> bool:
        return entry_id in self.deliveries

    def add(self, delivery: Delivery) -> None:
        self.deliveries[delivery.entry_id] = delivery
        self._empty.clear()
        if len(self.deliveries) >= self.limit:
            self._room.clear()

    def release(self, entry_ids: list[str]) -> None:
        """Free the slots of acknowledged (or abandoned) entries."""
        pop = self.deliveries.pop
        for entry_id in entry_ids:
            pop(entry_id, None)
        if len(self.deliveries) < self.limit:
            self._room.set()
        if not self.deliveries:
            self._empty.set()

    async def wait_for_room(self) -> None:
        await self._room.wait()

    async def wait_until_empty(self) -> None:
        await self._empty.wait()
