"""How the client-side commands print: rich tables for people, ``--json`` for scripts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from jobqueue.core.backlog import QueueSample
from jobqueue.core.client import CancelOutcome, DeadLetter, Enqueued, JobInfo

console = Console()
MAX_ROWS_SHOWN = 20
"""An enqueue of more jobs than this prints a summary instead of one row per job."""


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (dataclasses as objects)."""
    click.echo(orjson.dumps(data, default=_plain, option=orjson.OPT_INDENT_2).decode())


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot print {type(value).__name__} as JSON")


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(view)


def enqueued(results: Sequence[Enqueued]) -> None:
    duplicates = sum(r.duplicate for r in results)
    if len(results) > MAX_ROWS_SHOWN:
        click.echo(f"enqueued {len(results) - duplicates} jobs ({duplicates} duplicates)")
        return
    rows = [(r.job_id, r.state, r.entry_id or "-", "yes" if r.duplicate else "") for r in results]
    table("Enqueued", ["job id", "state", "stream entry", "duplicate"], rows)


def job_info(info: JobInfo) -> None:
    fields = dataclasses.asdict(info)
    table(f"Job {info.job_id}", ["field", "value"], [(k, v) for k, v in fields.items() if v])


def cancel_outcome(outcome: CancelOutcome) -> None:
    messages = {
        "cancelled": "cancelled: it will never run",
        "cancel_requested": "running: its worker was asked to stop",
    }
    click.echo(f"{outcome.job_id}: {messages.get(outcome.answer, outcome.answer)}")


def stats(sample: QueueSample) -> None:
    rows = [
        ("stream", sample.stream),
        ("length", sample.length),
        ("lag", f"{sample.lag} ({sample.lag_source})"),
        ("pending", sample.pending),
        ("delayed", sample.delayed),
        ("dead letters", sample.dead_letters),
    ]
    table("Queue", ["", "jobs"], rows)
    groups = [(g.name, g.consumers, g.pending, g.lag, g.last_delivered_id) for g in sample.groups]
    table("Consumer groups", ["group", "consumers", "pending", "lag", "last delivered"], groups)


def dead_letters(items: Sequence[DeadLetter], next_after: str | None) -> None:
    rows = [(d.entry_id, d.job_id, d.type, d.attempts, d.failed_at, d.reason) for d in items]
    table("Dead letters", ["id", "job id", "type", "attempts", "failed at", "reason"], rows)
    if next_after:
        click.echo(f"more: --after {next_after}")
