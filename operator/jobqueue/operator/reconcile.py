"""What a JobQueue owns, made to match its spec: the worker Deployment, the optional worker
NetworkPolicy, the consumer group, and on delete (with ``retentionPolicy: Delete``) the
queue's Redis keys.

These steps are idempotent; Kopf's create/update/resume handlers and the scaling loop
(when the Deployment vanished) call them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from jobqueue.core.errors import ConfigError
from jobqueue.core.keys import QueueKeys
from jobqueue.core.lanes import NO_LANES, Lanes
from jobqueue.core.settings import QueueSettings, check_redis_url
from jobqueue.operator.deployment import build_deployment, deployment_name
from jobqueue.operator.kube import KubeApi
from jobqueue.operator.network_policy import build_network_policy, policy_name
from jobqueue.operator.spec import PARTITIONS_FIXED, JobQueueSpec, uses_tls

KUBE_URL_PREFIXES = (
    "redis://",
    "rediss://",
    "redis+sentinel://",
    "rediss+sentinel://",
    "redis+cluster://",
    "rediss+cluster://",
)
"""What a JobQueue's Redis URL may start with (no unix:// socket in a pod)."""
DELETE_BATCH = 500
"""Keys unlinked per command when a queue's keys are deleted."""


def queue_keys(spec: JobQueueSpec) -> QueueKeys:
    """The keys of the queue's stream (of partition 0 when partitioned)."""
    return QueueKeys(
        stream=spec.stream, group=spec.group, dead_stream=spec.dead_letter_stream or ""
    )


def queue_settings(spec: JobQueueSpec, redis_url: str) -> QueueSettings:
    """The queue as its workers and producers see it."""
    return QueueSettings(
        redis_url=redis_url,
        stream=spec.stream,
        group=spec.group,
        dead_stream=spec.dead_letter_stream or "",
        partitions=spec.partitions,
        lanes=spec.queue_lanes,
    )


def partition_keys(spec: JobQueueSpec) -> list[QueueKeys]:
    """The keys of every partition, partition 0 first."""
    return queue_settings(spec, "redis://localhost").partition_keys


def pinned_partitions(body: Mapping[str, Any], spec: JobQueueSpec) -> tuple[JobQueueSpec, str]:
    """``spec`` with the partition count the queue was created with (recorded in
    ``status.partitionCount``), and why, when the spec asks for another: the CRD's rule
    refuses the change, this holds where the rule was not enforced (an older CRD), so
    no job is ever left in a partition no worker reads."""
    status = body.get("status") or {}
    live = status.get("partitionCount")
    if not isinstance(live, int) or live == spec.partitions:
        return spec, ""
    message = (
        f"spec.partitions {spec.partitions} ignored, the queue keeps {live}: {PARTITIONS_FIXED}"
    )
    return spec.model_copy(update={"partitions": live}), message


async def resolve_redis_url(api: KubeApi, namespace: str, spec: JobQueueSpec) -> str:
    """The Redis URL of the spec, read from its Secret when it names one."""
    ref = spec.redis.secret_ref
    if ref is None:
        if spec.redis.url is None:
            raise ConfigError("in a cluster, spec needs redis.url or redis.secretRef")
        try:
            return check_redis_url(spec.redis.url)
        except ConfigError as exc:
            raise ConfigError(f"spec.redis.url: {exc}") from None
    url = await api.secret_value(namespace, ref.name, ref.key)
    if url is None:
        raise ConfigError(f"secret {ref.name!r} has no key {ref.key!r}")
    url = url.strip()
    if not url.startswith(KUBE_URL_PREFIXES):
        raise ConfigError(
            f"secret {ref.name!r} key {ref.key!r} is not a redis://, redis+sentinel:// "
            "or redis+cluster:// URL"
        )
    try:
        check_redis_url(url)  # a typo in the port would crash the client later
    except ConfigError as exc:
        raise ConfigError(f"secret {ref.name!r} key {ref.key!r}: {exc}") from None
    if spec.redis.tls and not uses_tls(url):
        raise ConfigError(f"redis.tls is true but secret {ref.name!r} holds a redis:// URL")
    return url


async def ensure_group(redis: Redis, keys: QueueKeys, lanes: Lanes = NO_LANES) -> bool:
    """Create the consumer group at the start of the stream, and of every lane's stream
    (jobs already queued are served); False when it existed on all of them."""
    created = False
    for stream in lanes.streams(keys):
        try:
            await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        else:
            created = True
    return created


async def ensure_deployment(
    api: KubeApi, name: str, namespace: str, uid: str, spec: JobQueueSpec
) -> int:
    """Create the worker Deployment or bring its template in line; its replicas now.

    A new Deployment starts at ``minReplicas``; an existing one keeps its replicas (the
    scaling loop owns them), so a spec change rolls pods out without resizing.
    """
    existing = await api.get_deployment(namespace, deployment_name(name))
    if existing is None:
        # Created by server-side apply too, so the operator's apply owns every field from
        # the start: a field later dropped from the spec (a toleration, a volume of the pod
        # template) is removed, which fields of a POST (an "Update" manager) never would be.
        # The create handler and the scaling loop may both get here: both applies succeed.
        replicas = spec.scaling.min_replicas
        body = build_deployment(name, namespace, uid, spec, replicas)
        await api.apply_deployment(namespace, body)
        return replicas
    replicas = int(existing.get("spec", {}).get("replicas", spec.scaling.min_replicas))
    bounded = min(max(replicas, spec.scaling.min_replicas), spec.scaling.max_replicas)
    await api.apply_deployment(namespace, build_deployment(name, namespace, uid, spec, bounded))
    return bounded


async def ensure_network_policy(
    api: KubeApi, name: str, namespace: str, uid: str, spec: JobQueueSpec, redis_url: str
) -> bool:
    """Create or update the worker NetworkPolicy when the spec enables it, delete it when
    not; whether one exists now."""
    if not spec.network_policy.enabled:
        await api.delete_network_policy(namespace, policy_name(name))
        return False
    # Server-side apply from the start, as for the Deployment: a rule later dropped from
    # the spec is removed, which a field set by a POST (an "Update" manager) never would be.
    await api.apply_network_policy(
        namespace, build_network_policy(name, namespace, uid, spec, redis_url)
    )
    return True


async def delete_queue_keys(redis: Redis, keys: QueueKeys) -> int:
    """Delete every key of the queue (streams, delayed jobs, status records, idempotency
    keys); the number of keys removed."""
    named = [keys.stream, keys.dead, keys.delayed, keys.delayed_jobs, keys.queued, keys.health]
    named += (keys.started, keys.solo, keys.crashes, keys.waiting, keys.settled)
    removed = int(await redis.unlink(*named))
    for prefix in (keys.status_prefix, keys.done_prefix, keys.idempotency(""), keys.lane("")):
        batch: list[str] = []
        async for key in redis.scan_iter(match=_glob_escape(prefix) + "*", count=DELETE_BATCH):
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                removed += int(await redis.unlink(*batch))
                batch = []
        if batch:
            removed += int(await redis.unlink(*batch))
    return removed


def _glob_escape(text: str) -> str:
    # Stream names may hold glob characters; match them literally.
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
