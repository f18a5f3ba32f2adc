"""``jobqueue producer``: serve the HTTP producer API.

Kept apart from the client-side commands (`jobqueue.producer.cli`), so a starting
producer does not import what they print with (rich). Flags win over the environment
(`ProducerSettings.from_env`), the environment over the defaults.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
from typing import Any

import click

from jobqueue.core.errors import ConfigError
from jobqueue.core.log_flags import log_options
from jobqueue.core.logs import LogSettings, setup_logging
from jobqueue.core.startup import paused_gc
from jobqueue.producer.job_types import JobTypes
from jobqueue.producer.settings import ProducerSettings

LISTEN_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)
"""Binding errors a user fixes with another ``--host``/``--port``: one line, no traceback."""


@click.command("producer")
@click.option("--redis-url", help="Redis URL [REDIS_URL].")
@click.option("--stream", help="Stream of the queue [JOBQUEUE_STREAM, jobs:work].")
@click.option("--dead-stream", help="Dead letters [JOBQUEUE_DEAD_STREAM, {stream}:dead].")
@click.option("--partitions", type=int, help="Partitions of the queue [JOBQUEUE_PARTITIONS, 1].")
@click.option("--host", help="Address to listen on [JOBQUEUE_PRODUCER_HOST, 0.0.0.0].")
@click.option("--port", type=int, help="Port to listen on [JOBQUEUE_PRODUCER_PORT, 8080].")
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="Log one line per request [JOBQUEUE_PRODUCER_ACCESS_LOG, off].",
)
@log_options
def producer(log_level: str | None, log_format: str | None, **flags: Any) -> None:
    """Serve the HTTP producer API until SIGTERM, then finish in-flight requests."""
    with paused_gc():
        from jobqueue.producer.server import run  # aiohttp only for this command

    try:
        settings = ProducerSettings.from_env()
        host, port, access_log = flags.pop("host"), flags.pop("port"), flags.pop("access_log")
        queue = dataclasses.replace(settings.queue, **{k: v for k, v in flags.items() if v})
        settings = dataclasses.replace(
            settings, queue=queue, host=host or settings.host, port=port or settings.port
        )
        if access_log is not None:
            settings = dataclasses.replace(settings, access_log=access_log)
        logs = LogSettings.from_env().with_flags(log_level, log_format)
        JobTypes.from_file(settings.job_types_file)  # fail before listening
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    setup_logging(logs, "producer", pod=socket.gethostname(), queue=settings.queue.stream)
    try:
        run(settings)
    except OSError as exc:
        if exc.errno not in LISTEN_ERRORS:
            raise
        where = f"{settings.host}:{settings.port}"
        raise click.ClickException(f"cannot listen on {where}: {os.strerror(exc.errno)}") from None
