"""Demo traffic: bursts of the demo app's jobs, so a newcomer sees the queue scale.

A burst lands, the policy scales the workers up, they drain it, and during the quiet
period that follows the policy scales back down (to zero with the built-in demo queue).
Jobs go through the Python client (`jobqueue.core.client`), one atomic call per burst.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobqueue.core.client import AsyncClient, NewJob


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """Shape of the demo traffic."""

    first_burst_after_s: float = 3.0
    period_s: float = 75.0
    """Seconds between the starts of two bursts: long enough to drain and scale down."""
    burst_sizes: tuple[int, ...] = (60, 150, 100)
    """Jobs per burst, cycled."""


def demo_job(rng: random.Random, n: int) -> NewJob:
    """One demo job of a random type, with the payload its handler needs."""
    kind = rng.choice(("email", "report", "webhook", "thumbnail"))
    payloads: dict[str, dict[str, Any]] = {
        "email": {"to": f"user{n}@example.com", "subject": f"Welcome #{n}", "body": "Hello!"},
        "report": {"report_id": f"r-{n}", "rows": rng.randint(100, 5000)},
        "webhook": {"url": f"https://example.com/hooks/{n}", "event": "order.created"},
        "thumbnail": {"image_url": f"https://example.com/img/{n}.png", "width": 128, "height": 128},
    }
    return NewJob(kind, payloads[kind], priority=rng.randint(1, 10))


async def run_bursts(
    client: AsyncClient,
    on_event: Callable[[str], None],
    settings: DemoSettings | None = None,
    rng: random.Random | None = None,
) -> None:
    """Enqueue bursts forever (until cancelled), reporting each one through ``on_event``."""
    shape = settings or DemoSettings()
    rng = rng or random.Random()
    await asyncio.sleep(shape.first_burst_after_s)
    number = 0
    while True:
        size = shape.burst_sizes[number % len(shape.burst_sizes)]
        jobs = [demo_job(rng, number * 1000 + i) for i in range(size)]
        await client.enqueue_many(jobs)
        number += 1
        on_event(f"demo: burst {number} enqueued {size} jobs")
        await asyncio.sleep(shape.period_s)
