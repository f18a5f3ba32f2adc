"""The scaling loop of one JobQueue: sample Redis, ask the policy, act, report.

One `QueueScaler` lives in the Kopf daemon of each JobQueue. Every poll interval
`QueueScaler.tick` reads top to bottom:

1. parse the live spec (invalid: condition + Event, try again next poll); on a new
   generation, merge the pod template and report the user fields the operator owns
   (``PodTemplateConflict`` condition + a Warning Event);
2. sample Redis (unreachable: condition + Event, keep the replicas as they are), and
   enqueue the jobs of due cron schedules (``ScheduledJobEnqueued`` Event, next fire
   time in ``status.schedules``);
3. know the Deployment's replicas (re-read now and then; recreate it if it vanished);
4. measure rates, call `jobqueue.operator.policy.decide`;
5. patch ``spec.replicas`` only when the decision changes them, with an Event;
6. metrics every poll, status when `StatusBook` says it is worth a write;
7. now and then, remove the consumers of pods that no longer exist.

Errors of one JobQueue stay in its own loop: the others keep being served.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import kopf
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobqueue.core import redis_errors
from jobqueue.core.backlog import QueueSample
from jobqueue.core.client import AsyncClient
from jobqueue.core.connection import async_redis
from jobqueue.core.errors import ConfigError
from jobqueue.core.keys import QueueKeys
from jobqueue.core.partitions import partition_rows, sample_partitions, sum_samples
from jobqueue.operator.consumers import reap_dead_consumers
from jobqueue.operator.deployment import deployment_name, selector_labels
from jobqueue.operator.kube import KubeApi, KubeApiError
from jobqueue.operator.limit_usage import LimitUsage, sample_partitions_usage
from jobqueue.operator.metrics import OperatorMetrics
from jobqueue.operator.orphan_lanes import orphan_message, orphaned_lanes, shown_lane_streams
from jobqueue.operator.policy import (
    Decision,
    PolicySettings,
    PolicyState,
    Sample,
    decide,
    spec_limit_slots,
)
from jobqueue.operator.rates import RateWindow
from jobqueue.operator.reconcile import (
    ensure_deployment,
    ensure_group,
    partition_keys,
    pinned_partitions,
    queue_settings,
    resolve_redis_url,
)
from jobqueue.operator.schedules import Scheduler, created_at, iso
from jobqueue.operator.settings import OperatorSettings
from jobqueue.operator.spec import JobQueueSpec, RedisSpec, parse_spec
from jobqueue.operator.status import StatusBook, utc_now
from jobqueue.operator.worker_pod import worker_pod

log = logging.getLogger(__name__)
DEFAULT_POLL_S = 1.0
REDIS_ERRORS = (RedisError, OSError)


@dataclass
class OperatorContext:
    """What every JobQueue's loop shares: settings, metrics, the API client, the clock."""

    settings: OperatorSettings
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    api: KubeApi | None = None
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """UTC now, for cron schedules (tests control it)."""
    polls: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Polls done per ``(namespace, name)`` (for tests and benchmarks)."""

    def require_api(self) -> KubeApi:
        if self.api is None:
            raise kopf.TemporaryError("not logged in to the Kubernetes API yet", delay=1)
        return self.api


class QueueScaler:
    """Scales the worker Deployment of one JobQueue (see the module doc)."""

    def __init__(self, ctx: OperatorContext, namespace: str, name: str, uid: str) -> None:
        self.ctx, self.namespace, self.name, self.uid = ctx, namespace, name, uid
        self.book = StatusBook()
        self.rates = RateWindow()
        self.state = PolicyState()
        self.redis: Redis | None = None
        self._redis_key: tuple[str, str] | None = None
        self._url: str | None = None
        self._url_spec: RedisSpec | None = None
        self._url_read_s = float("-inf")
        self._replicas: int | None = None
        # Ready pods of the Deployment when last read (its status), for the metrics.
        self._ready: int | None = None
        self._replicas_read_s = float("-inf")
        self._reaped_s = float("-inf")
        self._last_error = ""
        self._template_generation: int | None = None
        self.scheduler: Scheduler | None = None
        self._orphans: dict[str, str] = {}
        """Undeclared lane streams (partition 0's) found holding jobs: stream -> lane."""

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        self.ctx.metrics.forget(self.namespace, self.name)

    async def tick(self, body: kopf.Body) -> float:
        """One poll; the seconds to wait before the next."""
        self.ctx.polls[(self.namespace, self.name)] += 1
        generation = int(body.get("metadata", {}).get("generation") or 0)
        try:
            spec, refused = pinned_partitions(body, parse_spec(body.get("spec") or {}))
            self._partitions_refused(body, generation, refused)
            self._check_template(body, generation, spec)
        except ConfigError as exc:
            await self._fail(body, generation, "Ready", "InvalidSpec", str(exc))
            return DEFAULT_POLL_S
        poll_s = spec.scaling.poll_interval_seconds
        try:
            redis = await self._redis_for(spec)
            samples = await sample_partitions(redis, partition_keys(spec), lanes=spec.queue_lanes)
            sample = sum_samples(samples, spec.stream, shared_dead=bool(spec.dead_letter_stream))
            self.ctx.metrics.sampled(self.namespace, self.name, sample, time.time(), samples)
            await self._fire_schedules(body, spec, redis)
            await self._scale(body, generation, spec, samples)
        except ConfigError as exc:
            await self._fail(body, generation, "RedisReachable", "RedisConfig", str(exc))
        except REDIS_ERRORS as exc:
            redis_errors.record("operator", exc)
            await self._fail(body, generation, "RedisReachable", "RedisUnreachable", repr(exc))
        return poll_s

    async def _scale(
        self, body: kopf.Body, generation: int, spec: JobQueueSpec, samples: list[QueueSample]
    ) -> None:
        now = self.ctx.clock()
        replicas = await self._current_replicas(spec, now)
        every = partition_keys(spec)
        for keys, one in zip(every, samples, strict=True):
            if one.missing_group and self.redis is not None:
                await ensure_group(self.redis, keys, spec.queue_lanes)
        sample = sum_samples(samples, spec.stream, shared_dead=bool(spec.dead_letter_stream))
        observed = self.rates.policy_sample(now, sample, replicas)
        usage = await self._limit_usage(spec, samples)
        if usage is not None and usage.only_limited_waiting:
            observed = dataclasses.replace(observed, limit_slots=spec_limit_slots(spec, observed))
        decision = decide(observed, PolicySettings.from_spec(spec), self.state)
        self.state = decision.state
        if decision.replicas != replicas:
            await self._apply(body, decision)
        self._limits_status(body, generation, decision, usage)
        self.ctx.metrics.observe(
            self.namespace,
            self.name,
            observed,
            sample.dead_letters,
            decision,
            ready=self._ready,
            max_replicas=spec.scaling.max_replicas,
        )
        self._record(generation, spec, sample, observed, decision)
        await self._orphaned_lanes(body, generation, spec, every)
        self.book.update(partitionCount=spec.partitions)
        if len(samples) > 1:
            self.book.update(partitions=partition_rows(samples))
        await self._write_status(now)
        if now - self._reaped_s >= self.ctx.settings.reap_interval_s:
            self._reaped_s = now
            await self._reap(body, spec)

    async def _orphaned_lanes(
        self,
        body: kopf.Body,
        generation: int,
        spec: JobQueueSpec,
        every: list[QueueKeys],
    ) -> None:
        """Undeclared lane streams still holding jobs: listed in ``status.lanes`` and
        the ``LanesOrphaned`` condition, an Event when they appear
        (`jobqueue.operator.orphan_lanes`)."""
        if self.redis is None:
            return
        known = {**shown_lane_streams(body.get("status") or {}), **self._orphans}
        rows = await orphaned_lanes(self.redis, every, spec.queue_lanes, known) if known else []
        self._orphans = {str(row["stream"]): str(row["name"]) for row in rows}
        if rows:
            current = self.book.fields.get("lanes") or []
            self.book.update(lanes=[*current, *rows])
        elif "LanesOrphaned" not in self.book.conditions:
            return  # never had any: no condition on every queue
        message = orphan_message(rows) if rows else ""
        reason = "UnreadLaneStreams" if rows else "NoneLeft"
        changed = self.book.set_condition("LanesOrphaned", bool(rows), reason, message, generation)
        if changed and rows:
            kopf.warn(body, reason="LanesOrphaned", message=message)

    async def _fire_schedules(self, body: kopf.Body, spec: JobQueueSpec, redis: Redis) -> None:
        """Enqueue the jobs of due cron ticks (see `jobqueue.operator.schedules`)."""
        if self.scheduler is None:
            if not spec.schedules:
                return
            self.scheduler = Scheduler(spec.schedules, created_at(body))
        self.scheduler.update(spec.schedules)
        now = self.ctx.wall_clock()
        assert self._url is not None  # set by _redis_for
        settings = queue_settings(spec, self._url)
        for fired in await self.scheduler.fire_due(AsyncClient(redis, settings), now):
            if not fired.duplicate:
                message = f"{fired.name}: job {fired.job_id} for {iso(fired.tick)}"
                kopf.info(body, reason="ScheduledJobEnqueued", message=message)
        self.book.update(schedules=self.scheduler.status(now))

    def _partitions_refused(self, body: kopf.Body, generation: int, refused: str) -> None:
        """The ``PartitionsChangeRefused`` condition, a Warning Event when it is set."""
        if not refused:
            self.book.conditions.pop("PartitionsChangeRefused", None)
            return
        changed = self.book.set_condition(
            "PartitionsChangeRefused", True, "PartitionsFixed", refused, generation
        )
        if changed:
            kopf.warn(body, reason="PartitionsChangeRefused", message=refused)

    def _check_template(self, body: kopf.Body, generation: int, spec: JobQueueSpec) -> None:
        """Once per generation: the condition, and an Event naming the conflicting fields."""
        if generation == self._template_generation:
            return
        conflicts = worker_pod(self.name, spec).conflicts
        self._template_generation = generation
        message = "; ".join(conflicts)
        reason = "OwnedFieldsSet" if conflicts else "Merged"
        self.book.set_condition("PodTemplateConflict", bool(conflicts), reason, message, generation)
        if conflicts:
            kopf.warn(body, reason="PodTemplateConflict", message=f"ignored: {message}")

    async def _redis_for(self, spec: JobQueueSpec) -> Redis:
        url = await self._redis_url(spec)
        key = (url, spec.stream)
        if self.redis is None or key != self._redis_key:
            if self.redis is not None:
                await self.redis.aclose()
            self.redis, self._redis_key = async_redis(url, socket_timeout_s=5.0), key
            self.rates = RateWindow()  # another queue: the old counters mean nothing here
        return self.redis

    async def _redis_url(self, spec: JobQueueSpec) -> str:
        """The spec's Redis URL; a Secret is re-read only every refresh interval, not per poll."""
        now = self.ctx.clock()
        fresh = now - self._url_read_s < self.ctx.settings.deployment_refresh_s
        if self._url is not None and self._url_spec == spec.redis and fresh:
            return self._url
        self._url = await resolve_redis_url(self.ctx.require_api(), self.namespace, spec)
        self._url_spec, self._url_read_s = spec.redis, now
        return self._url

    async def _current_replicas(self, spec: JobQueueSpec, now: float) -> int:
        """The Deployment's replicas: what we last set, re-read every refresh interval."""
        due = now - self._replicas_read_s >= self.ctx.settings.deployment_refresh_s
        if self._replicas is None or due:
            api = self.ctx.require_api()
            found = await api.get_deployment(self.namespace, deployment_name(self.name))
            if found is None:
                # Usual at creation (the create handler runs alongside), else someone deleted it.
                log.info("%s/%s: no worker Deployment, creating it", self.namespace, self.name)
                self._replicas = await ensure_deployment(
                    api, self.name, self.namespace, self.uid, spec
                )
                self._ready = 0
            else:
                self._replicas = int(found.get("spec", {}).get("replicas") or 0)
                self._ready = int((found.get("status") or {}).get("readyReplicas") or 0)
            self._replicas_read_s = now
        return self._replicas

    async def _limit_usage(
        self, spec: JobQueueSpec, samples: list[QueueSample]
    ) -> LimitUsage | None:
        if not spec.limits or self.redis is None:
            return None
        keys = partition_keys(spec)
        return await sample_partitions_usage(self.redis, keys, spec.type_limits, samples)

    def _limits_status(
        self, body: kopf.Body, generation: int, decision: Decision, usage: LimitUsage | None
    ) -> None:
        """``status.limits`` and the ``RateLimited`` condition, an Event when it is set."""
        if usage is None:
            self.book.conditions.pop("RateLimited", None)
            return
        self.book.update(limits=usage.as_status())
        capped = decision.rate_limited
        reason = "LimitsCapReplicas" if capped else "WithinLimits"
        changed = self.book.set_condition(
            "RateLimited", capped, reason, decision.reason if capped else "", generation
        )
        if changed and capped:
            kopf.info(body, reason="RateLimited", message=decision.reason)

    async def _apply(self, body: kopf.Body, decision: Decision) -> None:
        api = self.ctx.require_api()
        if not await api.scale_deployment(
            self.namespace, deployment_name(self.name), decision.replicas
        ):
            self._replicas = None  # vanished: the next poll recreates it
            return
        self._replicas = decision.replicas
        message = f"{decision.current} -> {decision.replicas}: {decision.reason}"
        reason = "ScaledUp" if decision.direction == "up" else "ScaledDown"
        kopf.info(body, reason=reason, message=message)
        self.book.update(lastScaleTime=utc_now(), lastScaleReason=message)

    def _record(
        self,
        generation: int,
        spec: JobQueueSpec,
        sample: QueueSample,
        observed: Sample,
        decision: Decision,
    ) -> None:
        book = self.book
        names = [lane.name for lane in spec.queue_lanes.lanes]
        weights = dict(zip(names, spec.lane_weights or [], strict=False))
        if spec.lanes:
            book.update(laneMode="Weighted" if spec.lane_weights else "Strict")
        elif "laneMode" in book.fields:
            book.update(laneMode=None)  # lanes removed: a merge patch's null drops it
        book.update(
            lag=sample.lag,
            lagSource=sample.lag_source,
            pending=sample.pending,
            delayed=sample.delayed,
            deadLetters=sample.dead_letters,
            lanes=[
                {
                    "name": lane.name,
                    "stream": lane.stream,
                    "lag": lane.lag,
                    "pending": lane.pending,
                    # The weight in effect (given, or the lane's place), weighted mode only.
                    **({"weight": weights[lane.name]} if lane.name in weights else {}),
                }
                for lane in sample.lanes
            ],
            arrivalRate=round(observed.arrival_rate, 2),
            completionRate=round(observed.completion_rate, 2),
            replicas=decision.replicas,
            desiredReplicas=decision.recommended,
            deployment=deployment_name(self.name),
            observedGeneration=generation,
        )
        book.set_condition("RedisReachable", True, "Sampled", "", generation)
        book.set_condition(
            "ScalingLimited",
            decision.limited,
            "AtMaxReplicas" if decision.limited else "WithinBounds",
            decision.reason if decision.limited else "",
            generation,
        )
        book.set_condition("Ready", True, "Scaling", "", generation)
        self._last_error = ""

    async def _fail(
        self, body: kopf.Body, generation: int, kind: str, reason: str, message: str
    ) -> None:
        """Record an error as conditions, one Event per distinct error, status at once."""
        self.book.set_condition(kind, False, reason, message, generation)
        if kind != "Ready":
            self.book.set_condition("Ready", False, reason, message, generation)
        self.book.update(observedGeneration=generation)
        if message != self._last_error:
            self._last_error = message
            kopf.warn(body, reason=reason, message=message)
        await self._write_status(self.ctx.clock())

    async def _write_status(self, now: float) -> None:
        patch = self.book.pending_patch(now, self.ctx.settings.status_interval_s)
        if patch is None:
            return
        try:
            written = await self.ctx.require_api().patch_status(self.namespace, self.name, patch)
        except KubeApiError as exc:
            log.warning("%s/%s: status not written: %s", self.namespace, self.name, exc)
            return
        if written:
            self.book.written(patch, now)

    async def _reap(self, body: kopf.Body, spec: JobQueueSpec) -> None:
        if self.redis is None:
            return
        api = self.ctx.require_api()
        pods = await api.pod_names(self.namespace, selector_labels(self.name))
        min_idle_ms = int(self.ctx.settings.reap_min_idle_s * 1000)
        deleted: set[str] = set()
        for keys in partition_keys(spec):
            result = await reap_dead_consumers(
                self.redis, keys, pods, min_idle_ms, lanes=spec.queue_lanes
            )
            deleted.update(result.deleted)
        if deleted:
            names = ", ".join(sorted(deleted))
            kopf.info(body, reason="ConsumersRemoved", message=f"gone pods: {names}")
