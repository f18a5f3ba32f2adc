"""``jobqueue dev``: run one JobQueue on this machine (local mode)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live

from jobqueue.core.errors import ConfigError
from jobqueue.core.log_flags import log_options
from jobqueue.core.logs import setup_logging
from jobqueue.local.queue import LocalQueue, load_queue
from jobqueue.local.session import run_dev
from jobqueue.local.settings import DevSettings
from jobqueue.local.view import Snapshot, plain_line, render, snapshot_fields


@click.command("dev")
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JobQueue YAML to run (default: the built-in demo queue).",
)
@click.option("--redis-url", help="Redis to use [REDIS_URL]; default: a private redis-server.")
@click.option("--host", "producer_host", help="Producer bind address [JOBQUEUE_PRODUCER_HOST].")
@click.option(
    "--port",
    "producer_port",
    type=click.IntRange(0, 65535),
    help="Producer API port, 0 = no producer [JOBQUEUE_PRODUCER_PORT; default 8080].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep Redis data and logs here [JOBQUEUE_DEV_DATA_DIR]; default: a temp dir.",
)
@click.option("--demo", is_flag=True, help="Enqueue bursts of demo jobs to watch scaling.")
@click.option(
    "--live/--no-live",
    default=None,
    help="Live view, or one log line per poll [default: live on a terminal].",
)
@click.option(
    "--duration-s", type=click.FloatRange(min=0, min_open=True), help="Stop after N seconds."
)
@click.option(
    "--exit-when-idle",
    is_flag=True,
    help="Stop once jobs have run and the queue is idle at its minimum replicas.",
)
@log_options
def dev(
    path: Path | None,
    redis_url: str | None,
    producer_host: str | None,
    producer_port: int | None,
    data_dir: Path | None,
    demo: bool,
    live: bool | None,
    duration_s: float | None,
    exit_when_idle: bool,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Run a JobQueue locally: Redis, the producer API and autoscaled worker processes.

    Workers are started and stopped by the operator's scaling policy. Ctrl-C stops
    everything (workers get SIGTERM and their grace period; Ctrl-C again kills them).
    """
    try:
        queue = load_queue(path)
        base = DevSettings.from_env()
        settings = DevSettings(
            redis_url=redis_url or base.redis_url,
            producer_host=producer_host or base.producer_host,
            producer_port=base.producer_port if producer_port is None else producer_port,
            data_dir=data_dir or base.data_dir,
            worker_metrics=base.worker_metrics,
            demo=demo,
            live=_live_default(live, base.logs.with_flags(log_level, log_format).format),
            duration_s=duration_s,
            exit_when_idle=exit_when_idle,
            logs=base.logs.with_flags(log_level, log_format),
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    # Local mode's own records (libraries' warnings); the view itself is not logging.
    setup_logging(settings.logs, "dev", queue=queue.name)
    try:
        if settings.live:
            _run_live(queue, settings)
        elif settings.logs.format == "json":
            _run_json(queue, settings)
        else:
            _run_lines(queue, settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _live_default(live: bool | None, log_format: str) -> bool:
    """The live view on a terminal, unless asked otherwise or for JSON lines."""
    if live is not None:
        return live
    return sys.stdout.isatty() and log_format != "json"


def _run_json(queue: LocalQueue, settings: DevSettings) -> None:
    """JSON mode: each poll and each event is a log record (one JSON object a line)."""
    log = logging.getLogger("jobqueue.local")

    def show(snap: Snapshot) -> None:
        log.info("poll", extra=snapshot_fields(snap))

    def event(line: str) -> None:
        log.info(line.strip(), extra={"event": True})

    asyncio.run(run_dev(queue, settings, show, event))


def _run_lines(queue: LocalQueue, settings: DevSettings) -> None:
    """Line mode: one ``key=value`` line per poll and one line per event, flushed."""
    closed = False

    def echo(text: str) -> None:
        nonlocal closed
        if closed:
            return
        try:
            click.echo(text)
        except BrokenPipeError:
            # The reader went away (``| head``): stop as on Ctrl-C, so cleanup still
            # runs, with further output going nowhere instead of raising again.
            closed = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            os.kill(os.getpid(), signal.SIGINT)

    asyncio.run(run_dev(queue, settings, lambda snap: echo(plain_line(snap)), echo_event(echo)))


def echo_event(echo: Callable[[str], None]) -> Callable[[str], None]:
    return lambda line: echo(f"event {line.strip()}")


def _run_live(queue: LocalQueue, settings: DevSettings) -> None:
    """Live mode: the rich view redrawn on each poll; events show inside it."""
    with Live(console=Console(), auto_refresh=False) as live:

        def show(snap: Snapshot) -> None:
            live.update(render(snap), refresh=True)

        asyncio.run(run_dev(queue, settings, show, lambda line: None))
