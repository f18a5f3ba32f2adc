"""The ``--log-level`` and ``--log-format`` flags every long-running command takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from jobqueue.core.logs import LOG_FORMATS, LOG_LEVELS

F = TypeVar("F", bound=Callable[..., Any])


def log_options(command: F) -> F:
    """Add ``--log-level`` and ``--log-format`` (None when not given: the environment's
    `LogSettings` apply)."""
    command = click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS, case_sensitive=False),
        help="text or json (one object per line) [JOBQUEUE_LOG_FORMAT, text].",
    )(command)
    return click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        help="Least level logged [JOBQUEUE_LOG_LEVEL, INFO].",
    )(command)
