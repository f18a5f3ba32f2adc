"""Demo traffic: bursts of the demo app's jobs, so a newcomer sees the queue scale.

A burst arrives over a few seconds, the policy scales the workers up, they drain it,
and in the quiet period that follows the policy scales back down (to zero with the
built-in demo queue). Jobs go through the Python client (`jobqueue.core.client`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobqueue.core.client import AsyncClient, NewJob


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """Shape of the demo traffic."""

    first_burst_after_s: float = 3.0
    period_s: float = 75.0
    """Seconds between the starts of two bursts: long enough to drain and scale down."""
    spread_s: int = 10
    """A burst arrives in equal parts, one per second, over this many seconds."""
    burst_sizes: tuple[int, ...] = (400, 1000, 600)
    """Jobs per burst, cycled."""


def demo_job(rng: random.Random, n: int) -> NewJob:
    """One demo job of a random type, with the payload its handler needs."""
    kind = rng.choice(("email", "report", "webhook", "thumbnail"))
    payloads: dict[str, dict[str, Any]] = {
        "email": {"to": f"user{n}@example.com", "template": "welcome"},
        "report": {"report_id": f"r-{n}"},
        "webhook": {"url": f"https://example.com/hooks/{n}", "event": "order.created"},
        "thumbnail": {"image_url": f"https://example.com/img/{n}.png", "width": 128},
    }
    return NewJob(kind, payloads[kind], priority=rng.randint(1, 10))


async def run_bursts(
    client: AsyncClient,
    on_event: Callable[[str], None],
    settings: DemoSettings | None = None,
    rng: random.Random | None = None,
) -> None:
    """Enqueue bursts until cancelled, reporting each one through ``on_event``."""
    shape = settings or DemoSettings()
    rng = rng or random.Random()
    await asyncio.sleep(shape.first_burst_after_s)
    number = 0
    while True:
        size = shape.burst_sizes[number % len(shape.burst_sizes)]
        number += 1
        on_event(f"demo: burst {number}, {size} jobs over {shape.spread_s}s")
        per_second = max(1, size // shape.spread_s)
        for start in range(0, size, per_second):
            count = min(per_second, size - start)
            jobs = [demo_job(rng, number * 10_000 + start + i) for i in range(count)]
            try:
                await client.enqueue_many(jobs)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                on_event(f"demo: {count} jobs not enqueued, Redis unreachable: {exc}")
            await asyncio.sleep(1.0)
        await asyncio.sleep(max(0.0, shape.period_s - shape.spread_s))
