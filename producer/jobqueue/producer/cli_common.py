"""What the client-side commands share: the queue flags and a connected client."""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from redis import exceptions as redis_errors

from jobqueue.core.client import Client
from jobqueue.core.dev_state import read_state
from jobqueue.core.errors import ConfigError, EnqueueUnconfirmed
from jobqueue.core.lanes import NO_LANES, Lanes, parse_lanes
from jobqueue.core.settings import MAX_PARTITIONS, QueueSettings, env_value

F = TypeVar("F", bound=Callable[..., Any])


def queue_options(command: F) -> F:
    """``--redis-url``, ``--stream``, ``--group``, ``--dead-stream``, ``--partitions``,
    ``--lanes`` and ``--json``."""
    options = [
        click.option("--redis-url", help="Redis URL [REDIS_URL]."),
        click.option("--stream", help="Stream of the queue [JOBQUEUE_STREAM, jobs:work]."),
        click.option("--group", help="Consumer group [JOBQUEUE_GROUP, workers]."),
        click.option("--dead-stream", help="Dead letters [JOBQUEUE_DEAD_STREAM, {stream}:dead]."),
        click.option(
            "--partitions",
            type=click.IntRange(1, MAX_PARTITIONS),
            help="Partitions of the queue [JOBQUEUE_PARTITIONS, 1].",
        ),
        click.option(
            "--lanes",
            help="Priority lanes, e.g. high:8-10,normal:4-7,low:1-3 [JOBQUEUE_LANES, none].",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def queue_settings(flags: dict[str, Any]) -> QueueSettings:
    """The queue from the environment with the given flags applied."""
    names = ("redis_url", "stream", "group", "dead_stream", "partitions", "lanes")
    given: dict[str, Any] = {name: flags.pop(name) for name in names if flags.get(name) is not None}
    for name in names:
        flags.pop(name, None)
    try:
        if "lanes" in given:
            given["lanes"] = env_value(
                {"--lanes": given["lanes"]}, "--lanes", NO_LANES, parse_lanes
            )
        settings = QueueSettings.from_env()
        if "redis_url" not in given and not os.environ.get("REDIS_URL"):
            settings = _local_mode_queue(settings)
        return dataclasses.replace(settings, **given)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _local_mode_queue(settings: QueueSettings) -> QueueSettings:
    """The queue of a running ``jobqueue dev``, when there is one (`dev_state`): its
    Redis, and its stream, group and dead letters unless the environment names others.
    Said on stderr, so the output (``--json`` included) stays the command's."""
    found = read_state()
    if found is None:
        return settings
    path, state = found
    from_env = os.environ.get
    click.echo(f"using the queue of jobqueue dev (pid {state.pid}, {path})", err=True)
    return dataclasses.replace(
        settings,
        redis_url=state.redis_url,
        stream=from_env("JOBQUEUE_STREAM") or state.stream,
        group=from_env("JOBQUEUE_GROUP") or state.group,
        dead_stream=from_env("JOBQUEUE_DEAD_STREAM") or state.dead_stream,
        partitions=int(from_env("JOBQUEUE_PARTITIONS") or state.partitions),
        lanes=settings.lanes if from_env("JOBQUEUE_LANES") else _lanes(state.lanes),
    )


def _lanes(text: str) -> Lanes:
    """The lanes local mode wrote (it checked them): a bad text is a ConfigError."""
    return env_value({"JOBQUEUE_LANES": text}, "JOBQUEUE_LANES", NO_LANES, parse_lanes)


@contextmanager
def connected(settings: QueueSettings) -> Iterator[Client]:
    """A sync client; Redis errors become a clear message and exit status 1."""
    try:
        with Client(settings) as client:
            yield client
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise click.ClickException(f"cannot reach Redis: {exc}") from None
    except redis_errors.ResponseError as exc:
        raise click.ClickException(f"Redis refused the command: {exc}") from None
    except EnqueueUnconfirmed as exc:
        ids = " ".join(exc.job_ids)
        raise click.ClickException(f"{exc}, job ids: {ids}") from None
    except redis_errors.RedisError as exc:  # e.g. InvalidResponse: the peer is not Redis
        raise click.ClickException(not_redis(settings.redis_url, exc)) from None


def not_redis(url: str, exc: Exception) -> str:
    """One line for a server that does not answer as Redis (the URL's host only: a URL
    may carry a password)."""
    where = urllib.parse.urlsplit(url).hostname or url.partition("?")[0]
    return f"the server at {where} does not answer as Redis does ({type(exc).__name__}: {exc})"
