"""``jobqueue worker APP_REF``: run a worker for the app named ``module:attribute``.

Every flag has an environment variable (docs/internals.md); flags win over the
environment, the environment over the defaults of `WorkerSettings`.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
from typing import Any

import click
import uvloop

from jobqueue.core.errors import ConfigError
from jobqueue.core.lanes import LANE_MODES, parse_lane_weights, parse_lanes
from jobqueue.core.limits import with_text
from jobqueue.core.log_flags import log_options
from jobqueue.core.logs import LogSettings, setup_logging
from jobqueue.core.partitions import parse_partition_list
from jobqueue.core.startup import paused_gc
from jobqueue.worker.app import load_app
from jobqueue.worker.partitioned import worker_for
from jobqueue.worker.runner import EarlyStop
from jobqueue.worker.settings import WorkerSettings

# flag -> (WorkerSettings field, or "queue.<field>"), in the order --help shows them.
FLAG_FIELDS = {
    "redis_url": "queue.redis_url",
    "stream": "queue.stream",
    "group": "queue.group",
    "dead_stream": "queue.dead_stream",
    "partitions": "queue.partitions",
    "worker_partitions": "partitions",
    "concurrency": "concurrency",
    "visibility_timeout_s": "visibility_timeout_s",
    "grace_period_s": "grace_period_s",
    "max_deliveries": "max_deliveries",
    "job_timeout_s": "job_timeout_s",
    "max_attempts": "max_attempts",
    "http_port": "http_port",
    "consumer": "consumer",
}


def settings_from(env_settings: WorkerSettings, flags: dict[str, Any]) -> WorkerSettings:
    """``env_settings`` with every flag that was given (not None) applied on top."""
    if isinstance(flags.get("worker_partitions"), str):
        try:
            flags = {**flags, "worker_partitions": parse_partition_list(flags["worker_partitions"])}
        except ValueError as exc:
            raise ConfigError(f"--worker-partitions: {exc}") from None
    queue_changes: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    for flag, target in FLAG_FIELDS.items():
        value = flags.get(flag)
        if value is None:
            continue
        if target.startswith("queue."):
            queue_changes[target.removeprefix("queue.")] = value
        else:
            changes[target] = value
    if flags.get("burst"):
        changes["burst"] = True
    try:
        if flags.get("lanes") is not None:
            queue_changes["lanes"] = parse_lanes(flags["lanes"])
        if flags.get("lane_mode") is not None:
            changes["lane_mode"] = flags["lane_mode"]
        if flags.get("lane_weights") is not None:
            changes["lane_weights"] = parse_lane_weights(flags["lane_weights"])
    except ValueError as exc:
        raise ConfigError(f"lanes: {exc}") from None
    rates, concurrency = flags.get("rate_limits"), flags.get("concurrency_limits")
    if rates is not None or concurrency is not None:
        changes["limits"] = with_text(env_settings.limits, rates, concurrency)
    queue = dataclasses.replace(env_settings.queue, **queue_changes)
    return dataclasses.replace(env_settings, queue=queue, **changes)


@click.command("worker")
@click.argument("app_ref")
@click.option("--redis-url", help="Redis URL [REDIS_URL].")
@click.option("--stream", help="Stream to consume [JOBQUEUE_STREAM, jobs:work].")
@click.option("--group", help="Consumer group [JOBQUEUE_GROUP, workers].")
@click.option("--dead-stream", help="Dead-letter stream [JOBQUEUE_DEAD_STREAM, {stream}:dead].")
@click.option("--partitions", type=int, help="Partitions of the queue [JOBQUEUE_PARTITIONS, 1].")
@click.option(
    "--worker-partitions",
    help="Consume only these partitions, e.g. 0,2 or 4-7 [JOBQUEUE_WORKER_PARTITIONS, all].",
)
@click.option("--concurrency", type=int, help="Most jobs in flight [JOBQUEUE_CONCURRENCY, 64].")
@click.option(
    "--visibility-timeout-s",
    type=float,
    help="Idle seconds before an entry is reclaimed [JOBQUEUE_VISIBILITY_TIMEOUT_S, 30].",
)
@click.option(
    "--grace-period-s",
    type=float,
    help="Seconds in-flight jobs may finish after SIGTERM [JOBQUEUE_GRACE_PERIOD_S, 25].",
)
@click.option(
    "--max-deliveries",
    type=int,
    help="Deliveries before a worker-killing job is dead [JOBQUEUE_MAX_DELIVERIES, 5].",
)
@click.option(
    "--job-timeout-s",
    type=float,
    help="Default job timeout, seconds [JOBQUEUE_JOB_TIMEOUT_S, 300].",
)
@click.option(
    "--max-attempts", type=int, help="Default attempts per job [JOBQUEUE_MAX_ATTEMPTS, 20]."
)
@click.option(
    "--http-port",
    type=int,
    help="Port of /healthz /readyz /metrics, 0 = off [JOBQUEUE_WORKER_HTTP_PORT, 8081].",
)
@click.option(
    "--rate-limits",
    help="Jobs started per period by type, every worker of the queue together, e.g."
    " email=50/1s,report=10/1m [JOBQUEUE_RATE_LIMITS].",
)
@click.option(
    "--concurrency-limits",
    help="Jobs running at once by type across the queue, e.g. report=3"
    " [JOBQUEUE_CONCURRENCY_LIMITS].",
)
@click.option(
    "--lanes",
    help="Priority lanes, e.g. high:8-10,normal:4-7,low:1-3 [JOBQUEUE_LANES, none].",
)
@click.option(
    "--lane-mode",
    type=click.Choice(LANE_MODES, case_sensitive=False),
    help="Serve the lanes strictly highest first or by weight [JOBQUEUE_LANE_MODE, strict].",
)
@click.option(
    "--lane-weights",
    help="Weighted mode's weights, e.g. high:6,normal:3,low:1 [JOBQUEUE_LANE_WEIGHTS].",
)
@click.option("--consumer", help="Consumer name [POD_NAME, default hostname-pid].")
@click.option("--burst", is_flag=True, help="Exit 0 once the queue is empty [JOBQUEUE_BURST].")
@log_options
def worker(app_ref: str, log_level: str | None, log_format: str | None, **flags: Any) -> None:
    """Run a worker for APP_REF (module:attribute naming a jobqueue.worker.App)."""
    early = EarlyStop().install()  # before the app's import, which may take a while
    try:
        logs = LogSettings.from_env().with_flags(log_level, log_format)
        settings = settings_from(WorkerSettings.from_env(), flags)
        setup_logging(logs, "worker", pod=settings.consumer, queue=settings.queue.stream)
        with paused_gc():  # the app's imports (jobqueue.core.startup)
            app = load_app(app_ref)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    runner = worker_for(app, settings)
    # What start-up built (modules, the app, the runner) lives as long as the process.
    # Imported with the collector paused, it all sits in the young generations, and the
    # first collections of generation 1 (and every full one) then scan it: 10-35 ms
    # stalls of the event loop that no job can start through, most of the p99 of
    # enqueue-to-start at low load (bench/latency.py --stages). Frozen, a collection
    # scans only what the jobs allocate (at most a few ms). No collection first: start-up frees
    # hardly any cycles (`jobqueue.core.startup`).
    gc.freeze()
    code = uvloop.run(runner.run(early=early))
    sys.exit(code)
