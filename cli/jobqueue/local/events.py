"""Local mode's event log: what it started, stopped, scaled, and why, newest last."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

EVENTS_KEPT = 10


class EventLog:
    """Timestamped one-line events (seconds since the run started), the last few kept."""

    def __init__(self, sink: Callable[[str], None], keep: int = EVENTS_KEPT) -> None:
        self.started_s = time.monotonic()
        self._sink = sink
        self._recent: deque[str] = deque(maxlen=keep)

    def __call__(self, message: str) -> None:
        line = f"{self.elapsed_s():6.1f}s {message}"
        self._recent.append(line)
        self._sink(line)

    def elapsed_s(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started_s

    @property
    def recent(self) -> tuple[str, ...]:
        return tuple(self._recent)
