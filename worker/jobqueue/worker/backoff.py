"""Retry delays: exponential growth, full jitter, a cap.

The ceiling of attempt ``n`` (1-based, the attempt that just failed) is
``min(cap_s, base_s * factor ** (n - 1))``; the delay is drawn uniformly from
``[0, ceiling]`` ("full jitter"), which spreads a burst of failures over the whole window
instead of retrying them in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from jobqueue.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter, in seconds."""

    base_s: float = 1.0
    """Ceiling of the first retry's delay, in seconds."""
    cap_s: float = 600.0
    """No delay ever exceeds this, in seconds."""
    factor: float = 2.0
    """How much the ceiling grows per failed attempt."""
    rng: Callable[[], float] = field(default=random.random, compare=False, repr=False)
    """Uniform draw in ``[0, 1)``; tests pass a fixed one to pin delays."""

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < 0:
            raise ConfigError("backoff base_s and cap_s must not be negative")
        if self.factor < 1:
            raise ConfigError("backoff factor must be at least 1")

    def ceiling_s(self, attempt: int) -> float:
        """The largest delay after failed attempt ``attempt`` (1-based), in seconds."""
        exponent = max(0, attempt - 1)
        # Past ~1000 doublings the float overflows; the cap has long been reached.
        if exponent > 1000:
            return self.cap_s
        return min(self.cap_s, self.base_s * self.factor**exponent)

    def delay_s(self, attempt: int) -> float:
        """A jittered delay after failed attempt ``attempt`` (1-based), in seconds."""
        return self.rng() * self.ceiling_s(attempt)
