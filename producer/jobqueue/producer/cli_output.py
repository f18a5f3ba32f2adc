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
from jobqueue.core.wire import shown

console = Console()
MAX_ROWS_SHOWN = 20
"""An enqueue of more jobs than this prints a summary instead of one row per job."""


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout: every object's keys in camelCase, each result in
    the shape the HTTP API gives it (``jobId``, ``streamEntryId``, a dead letter's ``id``)."""
    # Dataclasses pass through to `_plain` (orjson would write their snake_case fields).
    option = orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATACLASS
    try:
        text = orjson.dumps(data, default=_plain, option=option)
    except TypeError:
        # A text read from Redis with bytes that are not UTF-8 (a malformed entry's dead
        # letter or record keeps them): JSON cannot hold them, so they print as \\xNN.
        text = orjson.dumps(_shown(data), option=orjson.OPT_INDENT_2)
    click.echo(text.decode())


def _shown(value: Any) -> Any:
    """``value`` as `emit_json` prints it, every text made printable (`shown`)."""
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, dict):
        return {_shown(k): _shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shown(item) for item in value]
    if isinstance(value, DeadLetter) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        return _shown(_plain(value))
    return value


RENAMES = {"entry_id": "streamEntryId", "answer": "result"}
"""Fields whose HTTP API name is not just their name in camelCase."""


def camel(name: str) -> str:
    if name in RENAMES:
        return RENAMES[name]
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _plain(value: Any) -> Any:
    if isinstance(value, DeadLetter):
        return {
            "id": value.entry_id,
            "jobId": value.job_id,
            "type": value.type,
            "reason": value.reason,
            "failedAt": value.failed_at,
            "attempts": value.attempts,
            "fields": dict(value.fields),
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return {camel(f.name): getattr(value, f.name) for f in fields}
    raise TypeError(f"cannot print {type(value).__name__} as JSON")


def table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    whole: Sequence[str] = (),
) -> None:
    """Print a table; the ``whole`` columns (ids to copy) are never cut or wrapped,
    whatever the terminal's width: the other columns fold instead."""
    rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    view = Table(title=title, title_justify="left")
    for n, column in enumerate(columns):
        if column in whole:
            width = max([len(column), *(len(row[n]) for row in rows)])
            view.add_column(column, no_wrap=True, min_width=width)
        else:
            view.add_column(column, overflow="fold")
    for row in rows:
        view.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(view)


def enqueued(results: Sequence[Enqueued]) -> None:
    duplicates = sum(r.duplicate for r in results)
    if len(results) > MAX_ROWS_SHOWN:
        click.echo(f"enqueued {len(results) - duplicates} jobs ({duplicates} duplicates)")
        return
    rows = [(r.job_id, r.state, r.entry_id or "-", "yes" if r.duplicate else "") for r in results]
    columns = ["job id", "state", "stream entry", "duplicate"]
    table("Enqueued", columns, rows, whole=("job id", "stream entry"))


def job_info(info: JobInfo) -> None:
    fields = dataclasses.asdict(info)
    if info.result is not None:  # as JSON, so 0, false and "" show too
        fields["result"] = orjson.dumps(info.result).decode()
    labels = {"entry_id": "stream entry id", "dead_entry_id": "dead-letter id"}
    rows = [(labels.get(k, k.replace("_", " ")), v) for k, v in fields.items() if v]
    table(f"Job {info.job_id}", ["field", "value"], rows)


def cancel_outcome(outcome: CancelOutcome) -> None:
    messages = {
        "cancelled": "cancelled: it will never run",
        "cancel_requested": "running: its worker was asked to stop",
    }
    click.echo(f"{outcome.job_id}: {messages.get(outcome.answer, outcome.answer)}")


def stats(sample: QueueSample, partitions: Sequence[QueueSample] = ()) -> None:
    """The queue's counts; a partitioned queue's summed, then each partition's."""
    rows = [
        ("stream", sample.stream),
        ("length", sample.length),
        ("lag", f"{sample.lag} ({sample.lag_source})"),
        ("pending", sample.pending),
        ("delayed", sample.delayed),
        ("dead letters", sample.dead_letters),
    ]
    table("Queue", ["", "jobs"], rows)
    if sample.lanes:
        lanes = [(lane.name, lane.stream, lane.lag, lane.pending) for lane in sample.lanes]
        table("Priority lanes", ["lane", "stream", "lag", "pending"], lanes, whole=("stream",))
    groups = [(g.name, g.consumers, g.pending, g.lag, g.last_delivered_id) for g in sample.groups]
    table("Consumer groups", ["group", "consumers", "pending", "lag", "last delivered"], groups)
    if partitions:
        counts = [
            (i, p.stream, p.length, p.lag, p.pending, p.delayed, p.dead_letters)
            for i, p in enumerate(partitions)
        ]
        columns = ["#", "stream", "length", "lag", "pending", "delayed", "dead"]
        table("Partitions", columns, counts)


def dead_letters(items: Sequence[DeadLetter], next_after: str | None) -> None:
    rows = [(d.entry_id, d.job_id, d.type, d.attempts, d.failed_at, d.reason) for d in items]
    columns = ["id", "job id", "type", "attempts", "failed at", "reason"]
    table("Dead letters", columns, rows, whole=("id", "job id"))
    if next_after:
        click.echo(f"more: --after {next_after}")
