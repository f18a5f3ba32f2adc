"""What local mode shows: one `Snapshot` per poll, as a rich live view or one log line.

The live view is for a person at a terminal (queue, rates, replicas, outcomes, events);
the line form (``--no-live``) is for CI logs and tests: one line per poll, ``key=value``
pairs that a program can parse.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from jobqueue.core.backlog import QueueSample
from jobqueue.local.outcomes import DeadLetter

OUTCOMES = ("succeeded", "retried", "dead", "cancelled")


def redact_url(url: str) -> str:
    """``url`` with its passwords replaced by ``***``, for display: the one in the
    userinfo and a Sentinel URL's ``sentinel_password`` (its host list left as is)."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    query = re.sub(r"(^|&)(sentinel_password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{hosts}", query=query))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one frame of the view shows."""

    queue_name: str
    redis_url: str
    producer_url: str
    log_dir: str
    elapsed_s: float
    sample: QueueSample | None
    """None while Redis cannot be read (see ``error``)."""
    oldest_waiting_s: float = 0.0
    """How long the oldest job not yet delivered has waited, seconds."""
    arrival_rate: float = 0.0
    """Jobs added per second, recently."""
    completion_rate: float = 0.0
    """Jobs acknowledged per second, recently."""
    replicas_current: int = 0
    """Worker processes running."""
    replicas_stopping: int = 0
    """Worker processes finishing their in-flight jobs before they exit."""
    replicas_desired: int = 0
    min_replicas: int = 0
    max_replicas: int = 0
    reason: str = ""
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead_letters: Sequence[DeadLetter] = ()
    events: Sequence[str] = ()
    error: str = ""
    cli_hint: str = ""
    """How to run the CLI against this queue from another terminal (``.venv/bin/jobqueue``)."""
    partition_lags: tuple[int, ...] = ()
    """Each partition's lag, for a partitioned queue (``sample`` holds the sums)."""


def snapshot_fields(snap: Snapshot) -> dict[str, object]:
    """One poll as the fields of a JSON log line (``--log-format json``)."""
    fields: dict[str, object] = {"elapsed_s": round(snap.elapsed_s, 1)}
    if snap.sample is None:
        fields["error"] = snap.error
    else:
        s = snap.sample
        fields.update(lag=s.lag, pending=s.pending, delayed=s.delayed, dead=s.dead_letters)
        if s.lanes:
            fields["lanes"] = {
                lane.name: {"lag": lane.lag, "pending": lane.pending} for lane in s.lanes
            }
        fields["oldest_waiting_s"] = round(snap.oldest_waiting_s, 3)
        if snap.partition_lags:
            fields["partition_lag"] = list(snap.partition_lags)
    done = sum(n for (_, outcome), n in snap.outcomes.items() if outcome == "succeeded")
    fields.update(
        arrival_rate=round(snap.arrival_rate, 2),
        completion_rate=round(snap.completion_rate, 2),
        replicas=snap.replicas_current,
        replicas_desired=snap.replicas_desired,
        replicas_stopping=snap.replicas_stopping,
        succeeded=done,
        reason=snap.reason,
    )
    return fields


def plain_line(snap: Snapshot) -> str:
    """One ``key=value`` line for logs: ``t=12.0s lag=3 pending=4 ... replicas=2/3``."""
    parts = [f"t={snap.elapsed_s:.1f}s"]
    if snap.sample is None:
        parts.append(f"error={snap.error!r}")
    else:
        s = snap.sample
        parts += [
            f"lag={s.lag}",
            *([f"lanes={_lane_lags(s)}"] if s.lanes else []),
            f"oldest={snap.oldest_waiting_s:.1f}s",
            f"pending={s.pending}",
            f"delayed={s.delayed}",
            f"dead={s.dead_letters}",
        ]
        if snap.partition_lags:
            parts.append("partition_lag=" + "/".join(map(str, snap.partition_lags)))
    done = sum(n for (_, outcome), n in snap.outcomes.items() if outcome == "succeeded")
    parts += [
        f"in={snap.arrival_rate:.1f}/s",
        f"out={snap.completion_rate:.1f}/s",
        f"replicas={snap.replicas_current}/{snap.replicas_desired}",
        f"stopping={snap.replicas_stopping}",
        f"succeeded={done}",
        f"reason={snap.reason!r}",
    ]
    return " ".join(parts)


def _lane_lags(sample: QueueSample) -> str:
    """``high:3,normal:0,low:12``: the lag of each priority lane, highest first."""
    return ",".join(f"{lane.name}:{lane.lag}" for lane in sample.lanes)


def render(snap: Snapshot) -> RenderableType:
    """The live view of one snapshot."""
    header = Text.assemble(
        ("jobqueue dev", "bold"),
        f"  {snap.queue_name}  ",
        (f"producer {snap.producer_url}  redis {redact_url(snap.redis_url)}", "dim"),
        (f"  up {snap.elapsed_s:.0f}s", "dim"),
    )
    top = Table.grid(padding=(0, 4))
    top.add_row(_queue_table(snap), _replicas_table(snap))
    parts: list[RenderableType] = [header, top, _outcomes_table(snap)]
    if snap.dead_letters:
        parts.append(_dead_table(snap.dead_letters))
    parts.append(_events_panel(snap))
    cli = f"    another terminal: {snap.cli_hint} stats" if snap.cli_hint else ""
    parts.append(Text(f"logs: {snap.log_dir}{cli}    Ctrl-C stops everything", style="dim"))
    return Group(*parts)


def _queue_table(snap: Snapshot) -> RenderableType:
    table = Table(title="queue", title_justify="left", show_header=False, box=None)
    if snap.sample is None:
        table.add_row(Text(f"Redis unreachable: {snap.error}", style="red"))
        return table
    s = snap.sample
    for name, value in (
        ("stream", s.stream),
        ("lag (waiting)", str(s.lag)),
        *(
            (f"  lane {lane.name}", f"{lane.lag} waiting, {lane.pending} running")
            for lane in s.lanes
        ),
        ("oldest waiting", f"{snap.oldest_waiting_s:.1f} s"),
        ("pending (running)", str(s.pending)),
        ("delayed", str(s.delayed)),
        ("dead letters", str(s.dead_letters)),
        ("arrivals", f"{snap.arrival_rate:.1f} jobs/s"),
        ("completions", f"{snap.completion_rate:.1f} jobs/s"),
    ):
        table.add_row(name, Text(value, style="bold"))
    if snap.partition_lags:
        lags = " / ".join(map(str, snap.partition_lags))
        table.add_row(f"lag of {len(snap.partition_lags)} partitions", Text(lags, style="bold"))
    return table


def _replicas_table(snap: Snapshot) -> RenderableType:
    table = Table(title="workers", title_justify="left", show_header=False, box=None)
    bar = "■" * snap.replicas_current + "□" * max(0, snap.replicas_desired - snap.replicas_current)
    table.add_row(
        "running / desired",
        Text(f"{snap.replicas_current} / {snap.replicas_desired}", style="bold"),
    )
    table.add_row("stopping", str(snap.replicas_stopping))
    table.add_row("bounds", f"{snap.min_replicas}..{snap.max_replicas}")
    table.add_row("", Text(bar, style="green"))
    table.add_row("policy", Text(snap.reason, overflow="fold"))
    return table


def _outcomes_table(snap: Snapshot) -> RenderableType:
    table = Table(title="outcomes (all workers)", title_justify="left")
    table.add_column("type")
    for outcome in OUTCOMES:
        table.add_column(outcome, justify="right")
    types = sorted({job_type for job_type, _ in snap.outcomes})
    for job_type in types:
        table.add_row(job_type, *(str(snap.outcomes[(job_type, o)]) for o in OUTCOMES))
    if not types:
        table.add_row(Text("no job finished yet", style="dim"), *("" for _ in OUTCOMES))
    return table


def _dead_table(dead: Sequence[DeadLetter]) -> RenderableType:
    table = Table(title="latest dead letters", title_justify="left")
    for column in ("failed at", "type", "job", "reason"):
        table.add_column(column)
    for letter in dead:
        table.add_row(letter.failed_at, letter.type, letter.job_id, letter.reason)
    return table


def _events_panel(snap: Snapshot) -> RenderableType:
    body = "\n".join(snap.events) if snap.events else "(none yet)"
    return Panel(Text(body), title="recent events", title_align="left")
