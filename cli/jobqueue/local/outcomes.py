"""Recent job outcomes for the live view: worker metrics and the dead-letter stream.

Counts per type and outcome come from each worker's Prometheus counter
``jobqueue_jobs_total{type,outcome}`` on its side-server. The last value read from a
worker is kept after it stops, so totals do not drop when the queue scales down. The
newest dead letters come straight from the dead-letter stream, with their reasons.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

JOBS_METRIC = "jobqueue_jobs"
"""``jobqueue_jobs_total`` as the parser names the counter family (suffix dropped)."""
SCRAPE_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter, as shown in the view."""

    entry_id: str
    job_id: str
    type: str
    reason: str
    failed_at: str


def parse_outcomes(metrics_text: str) -> Counter[tuple[str, str]]:
    """``(type, outcome) -> count`` from a Prometheus text exposition."""
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(metrics_text):
        if family.name != JOBS_METRIC:
            continue
        for sample in family.samples:
            if sample.name != f"{JOBS_METRIC}_total":
                continue
            key = (sample.labels.get("type", "?"), sample.labels.get("outcome", "?"))
            counts[key] += int(sample.value)
    return counts


class OutcomeTally:
    """Outcome counts of every worker local mode ran, alive or stopped."""

    def __init__(self) -> None:
        self._by_worker: dict[str, Counter[tuple[str, str]]] = {}

    async def scrape(
        self, session: aiohttp.ClientSession, workers: Iterable[tuple[str, int]]
    ) -> None:
        """Read ``/metrics`` of each ``(name, port)``; a worker that does not answer keeps
        its last counts (it may be starting, or gone)."""
        targets = [(name, port) for name, port in workers if port > 0]
        results = await asyncio.gather(
            *(_fetch(session, port) for _, port in targets), return_exceptions=True
        )
        for (name, _), result in zip(targets, results, strict=True):
            if isinstance(result, str):
                self._by_worker[name] = parse_outcomes(result)

    def totals(self) -> Counter[tuple[str, str]]:
        """``(type, outcome) -> count`` summed over every worker."""
        total: Counter[tuple[str, str]] = Counter()
        for counts in self._by_worker.values():
            total.update(counts)
        return total


async def _fetch(session: aiohttp.ClientSession, port: int) -> str:
    timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with session.get(url, timeout=timeout) as response:
            response.raise_for_status()
            return await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ConnectionError(f"cannot scrape {url}: {exc}") from exc


async def recent_dead_letters(redis: Redis, dead_stream: str, count: int = 5) -> list[DeadLetter]:
    """The newest ``count`` dead letters, newest first."""
    raw = await redis.xrevrange(dead_stream, count=count)
    # The client decodes responses (jobqueue.core.connection), so ids and fields are str.
    entries = cast(list[tuple[str, dict[str, str]]], raw or [])
    return [
        DeadLetter(
            entry_id=str(entry_id),
            job_id=fields.get("original_id", ""),
            type=fields.get("type", ""),
            reason=fields.get("reason", ""),
            failed_at=fields.get("failed_at", ""),
        )
        for entry_id, fields in entries
    ]
