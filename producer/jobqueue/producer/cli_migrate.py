"""``jobqueue migrate-keys``: move a queue's data from the key names before 0.2."""

from __future__ import annotations

import asyncio
from typing import Any

import click
from redis import exceptions as redis_errors

from jobqueue.core.connection import async_redis
from jobqueue.core.keys import LEGACY_DEAD_STREAM
from jobqueue.core.migrate import Migrated, migrate_keys
from jobqueue.core.settings import QueueSettings
from jobqueue.producer import cli_output as out
from jobqueue.producer.cli_common import queue_options, queue_settings


@click.command("migrate-keys")
@click.option(
    "--from-dead-stream",
    default=LEGACY_DEAD_STREAM,
    show_default=True,
    help="Dead-letter stream the old version wrote (its default, shared by all queues).",
)
@queue_options
def migrate(from_dead_stream: str, **flags: Any) -> None:
    """Move a queue's delayed jobs, status records, idempotency keys and dead letters to
    the hash-tagged key names of 0.2 (docs/internals.md). Safe to run again."""
    settings = queue_settings(flags)
    try:
        moved = asyncio.run(_migrate(settings, from_dead_stream))
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise click.ClickException(f"cannot reach Redis: {exc}") from None
    except redis_errors.ResponseError as exc:
        raise click.ClickException(f"Redis refused the command: {exc}") from None
    if flags["as_json"]:
        out.emit_json(moved)
        return
    click.echo(
        f"moved {moved.delayed_jobs} delayed jobs, {moved.status_records} status records, "
        f"{moved.idempotency_keys} idempotency keys, {moved.dead_letters} dead letters "
        f"of {settings.stream} to {settings.keys.tag}"
    )


async def _migrate(settings: QueueSettings, legacy_dead: str) -> Migrated:
    redis = async_redis(settings.redis_url)
    try:
        return await migrate_keys(redis, settings.keys, legacy_dead=legacy_dead)
    finally:
        await redis.aclose()
