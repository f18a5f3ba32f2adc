"""The client-side commands: ``enqueue``, ``stats``, ``jobs`` and ``dead`` work straight
against Redis with the Python client (``producer``, the HTTP API, is in `cli_serve`).

Queue flags (``--redis-url``, ``--stream``, ``--group``, ``--dead-stream``) win over
their environment variables (docs/internals.md), which win over the defaults.
"""

from __future__ import annotations

from typing import Any

import click
import orjson
from rich.progress import Progress

from jobqueue.core.client import InvalidNewJob, NewJob
from jobqueue.core.errors import ConfigError
from jobqueue.core.partitions import partition_rows
from jobqueue.producer import cli_output as out
from jobqueue.producer.cli_common import connected, queue_options, queue_settings
from jobqueue.producer.cli_dead import dead
from jobqueue.producer.job_types import JobTypes
from jobqueue.producer.settings import ProducerSettings

__all__ = ["dead", "enqueue", "jobs", "stats"]
ENQUEUE_CHUNK = 1000
"""Jobs per round trip of ``enqueue --count``."""


def _payload(text: str) -> dict[str, Any]:
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="PAYLOAD_JSON") from None
    if not isinstance(payload, dict):
        raise click.BadParameter("must be a JSON object", param_hint="PAYLOAD_JSON")
    return payload


def _check_type(job_type: str, payload: dict[str, Any]) -> None:
    """Apply ``JOBQUEUE_JOB_TYPES_FILE`` when it is set, as the HTTP API does."""
    path = ProducerSettings.from_env().job_types_file
    if path is None:
        return
    issues = JobTypes.from_file(path).issues(job_type, payload)
    if issues:
        raise click.BadParameter("; ".join(f"{f}: {m}" for f, m in issues), param_hint="job")


@click.command("enqueue")
@click.argument("job_type")
@click.argument("payload_json")
@click.option("--count", type=click.IntRange(min=1), default=1, help="How many copies.")
@click.option("--priority", type=click.IntRange(1, 10), default=5, help="1..10, default 5.")
@click.option("--delay", type=click.FloatRange(min=0), help="Seconds before it may run.")
@click.option("--idempotency-key", help="Enqueue at most once under this key.")
@click.option("--job-id", help="The job's id (default: a new ULID); a known id enqueues nothing.")
@click.option(
    "--partition-key", help="Jobs of one key go to one partition, in order (partitioned queues)."
)
@queue_options
def enqueue(job_type: str, payload_json: str, **flags: Any) -> None:
    """Enqueue COUNT jobs of JOB_TYPE with PAYLOAD_JSON straight into Redis.

    A lost reply is retried with the same job ids, so no job is enqueued twice; to retry
    a failed command yourself, give --job-id (or --idempotency-key)."""
    settings = queue_settings(flags)
    if flags["job_id"] is not None and flags["count"] != 1:
        raise click.BadParameter("one job per id: use --count 1", param_hint="--job-id")
    payload = _payload(payload_json)
    try:
        _check_type(job_type, payload)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    job = NewJob(
        job_type,
        payload,
        priority=flags["priority"],
        delay_s=flags["delay"],
        idempotency_key=flags["idempotency_key"],
        job_id=flags["job_id"],
        partition_key=flags["partition_key"],
    )
    count: int = flags["count"]
    results = []
    with (
        connected(settings) as client,
        Progress(transient=True, disable=count <= ENQUEUE_CHUNK) as bar,
    ):
        task = bar.add_task("enqueueing", total=count)
        for start in range(0, count, ENQUEUE_CHUNK):
            chunk = [job] * min(ENQUEUE_CHUNK, count - start)
            try:
                results += client.enqueue_many(chunk)
            except InvalidNewJob as exc:
                raise click.BadParameter(exc.reason, param_hint="job") from None
            bar.advance(task, len(chunk))
    out.emit_json(results) if flags["as_json"] else out.enqueued(results)


@click.command("stats")
@queue_options
def stats(**flags: Any) -> None:
    """Show the queue's length, lag, pending, delayed and dead letters, and its groups."""
    with connected(queue_settings(flags)) as client:
        samples = client.partition_stats()
        sample = client.summed(samples)
    if flags["as_json"]:
        body = sample.as_dict()
        if len(samples) > 1:
            body["partitions"] = partition_rows(samples)
        out.emit_json(body)
    else:
        out.stats(sample, samples if len(samples) > 1 else [])


@click.group("jobs")
def jobs() -> None:
    """Read, wait for or cancel one job."""


@jobs.command("get")
@click.argument("job_id")
@queue_options
def jobs_get(job_id: str, **flags: Any) -> None:
    """Show a job's state, attempts, timestamps and last error."""
    with connected(queue_settings(flags)) as client:
        info = client.get(job_id)
    if info is None:
        raise click.ClickException(f"no job {job_id!r} (unknown, or its record expired)")
    out.emit_json(info) if flags["as_json"] else out.job_info(info)


WAIT_EXIT_CODES = {"succeeded": 0, "dead": 1, "cancelled": 1}
"""``jobs wait``'s exit status by outcome; 124 when the time ran out (as timeout(1))."""
WAIT_TIMED_OUT = 124


@jobs.command("wait")
@click.argument("job_id")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the job to settle.",
)
@queue_options
def jobs_wait(job_id: str, timeout_s: float, **flags: Any) -> None:
    """Wait for a job to settle and show it. Exit status: 0 succeeded, 1 dead or
    cancelled (or unknown), 124 still not settled when the time ran out."""
    with connected(queue_settings(flags)) as client:
        info = client.wait(job_id, timeout_s)
    if info is None:
        raise click.ClickException(f"no job {job_id!r} (unknown, or its record expired)")
    out.emit_json(info) if flags["as_json"] else out.job_info(info)
    code = WAIT_EXIT_CODES.get(info.state, WAIT_TIMED_OUT)
    if code == WAIT_TIMED_OUT and not flags["as_json"]:
        click.echo(f"timed out after {timeout_s:g} s: the job is {info.state}", err=True)
    raise SystemExit(code)


@jobs.command("cancel")
@click.argument("job_id")
@queue_options
def jobs_cancel(job_id: str, **flags: Any) -> None:
    """Cancel a queued or delayed job; a running one is asked to stop."""
    with connected(queue_settings(flags)) as client:
        outcome = client.cancel(job_id)
    if flags["as_json"]:
        out.emit_json(outcome)
    elif outcome.answer in ("cancelled", "cancel_requested"):
        out.cancel_outcome(outcome)
    if outcome.answer == "not_found":
        raise click.ClickException(f"no job {job_id!r} (unknown, or its record expired)")
    if outcome.answer == "not_cancellable":
        raise click.ClickException(f"job {job_id!r} is already {outcome.state}")
