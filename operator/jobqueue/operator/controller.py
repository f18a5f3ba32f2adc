"""The Kopf handlers of the JobQueue resource, registered on a registry of our own.

Nothing registers at import time: `build_registry` creates a fresh `kopf.OperatorRegistry`
with handlers that close over one `OperatorContext`, so tests (and two operators in one
process) never share state.

- login: Kopf's credentials (service account, else kubeconfig; or a given server) are
  also handed to our `KubeApi`, so both talk to the same cluster as the same user;
- create / update / resume: the worker Deployment, its optional PodDisruptionBudget and
  NetworkPolicy, and the consumer group match the spec;
- daemon: one `QueueScaler` loop per JobQueue, stopped when the JobQueue goes;
- delete: the Deployment, the budget and the NetworkPolicy go (the owner reference would
  do it too, but not on clusters without the garbage collector, nor before the finalizer
  is released); with ``retentionPolicy: Delete`` the queue's Redis keys go too, else the
  streams stay.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import aiohttp
import kopf
from redis.exceptions import RedisError

from jobqueue.core.connection import async_redis
from jobqueue.core.errors import ConfigError
from jobqueue.operator.deployment import deployment_name
from jobqueue.operator.disruption import budget_name, ensure_budget
from jobqueue.operator.kube import KubeApi, KubeApiError
from jobqueue.operator.network_policy import policy_name
from jobqueue.operator.reconcile import (
    delete_queue_keys,
    ensure_deployment,
    ensure_group,
    ensure_network_policy,
    partition_keys,
    pinned_partitions,
    resolve_redis_url,
)
from jobqueue.operator.scaler import OperatorContext, QueueScaler
from jobqueue.operator.spec import GROUP, PLURAL, VERSION, JobQueueSpec, parse_spec

log = logging.getLogger(__name__)
RESOURCE = (GROUP, VERSION, PLURAL)
FINALIZER = f"{GROUP}/finalizer"
INVALID = 422
"""The API server's answer to an object it rejects."""
DELETE_RETRIES = 3
"""Attempts at deleting a queue's Redis keys before the JobQueue is let go anyway."""


def kopf_settings(ctx: OperatorContext) -> kopf.OperatorSettings:
    """Kopf's own settings for this operator."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.peering.name = ctx.settings.peering
    # With peering, replicas wait for the peering CRD instead of all acting at once.
    settings.peering.mandatory = not ctx.settings.standalone
    settings.peering.standalone = ctx.settings.standalone
    settings.peering.priority = ctx.settings.priority
    # Namespaced (the chart's watchNamespaces): the names are exact, so Kopf need not list
    # or watch namespaces (a Role cannot grant that; Kopf would log 403 warnings) and the
    # CRD it serves exists before the operator starts.
    settings.scanning.disabled = bool(ctx.settings.namespaces)
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    return settings


def build_registry(ctx: OperatorContext, server: str | None = None) -> kopf.OperatorRegistry:
    """A registry with the JobQueue handlers; ``server`` overrides the login (tests)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return _login(ctx, server, **kwargs)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        # Close our connections while Kopf stops, so none outlives the operator.
        if ctx.api is not None:
            await ctx.api.close()

    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    @kopf.on.update(*RESOURCE, field="spec", registry=registry)
    async def reconcile(
        body: kopf.Body, name: str, namespace: str | None, uid: str, **_: Any
    ) -> None:
        spec = _live_spec(body)
        api, ns = ctx.require_api(), _ns(namespace)
        try:
            await ensure_deployment(api, name, ns, uid, spec)
            url = await resolve_redis_url(api, ns, spec)
            await ensure_network_policy(api, name, ns, uid, spec, url)
        except ConfigError as exc:
            raise kopf.PermanentError(str(exc)) from None
        except KubeApiError as exc:
            if exc.status == INVALID:  # e.g. a malformed networkPolicy rule: say so, once
                raise kopf.PermanentError(f"rejected by the API server: {exc}") from None
            raise
        done = await ensure_budget(api, name, ns, uid, spec)
        if done is not None:
            kopf.info(body, reason=f"DisruptionBudget{done.title()}", message=budget_name(name))
        await _ensure_group(body, spec, url)

    @kopf.daemon(*RESOURCE, registry=registry, cancellation_timeout=10.0)
    async def scale(
        body: kopf.Body,
        name: str,
        namespace: str | None,
        uid: str,
        stopped: kopf.DaemonStopped,
        **_: Any,
    ) -> None:
        await _scale_until_stopped(QueueScaler(ctx, _ns(namespace), name, uid), body, stopped)

    @kopf.on.delete(*RESOURCE, registry=registry)
    async def delete(
        body: kopf.Body, name: str, namespace: str | None, retry: int, **_: Any
    ) -> None:
        api = ctx.require_api()
        await api.delete_deployment(_ns(namespace), deployment_name(name))
        await api.delete_pdb(_ns(namespace), budget_name(name))
        await api.delete_network_policy(_ns(namespace), policy_name(name))
        try:
            spec = pinned_partitions(body, parse_spec(body.get("spec") or {}))[0]
        except ConfigError:
            return  # an invalid spec never got a queue of ours: nothing else to remove
        if spec.retention_policy == "Delete":
            await _delete_keys(api, body, _ns(namespace), spec, retry)

    return registry


def _login(ctx: OperatorContext, server: str | None, **kwargs: Any) -> kopf.ConnectionInfo | None:
    if server is not None:
        info: kopf.ConnectionInfo | None = kopf.ConnectionInfo(server=server, insecure=True)
    else:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is not None:
        ctx.api = KubeApi(info)
    return info


async def _scale_until_stopped(
    scaler: QueueScaler, body: kopf.Body, stopped: kopf.DaemonStopped
) -> None:
    try:
        while not stopped:
            try:
                interval_s = await scaler.tick(body)
            except (KubeApiError, kopf.TemporaryError, aiohttp.ClientError, OSError) as exc:
                # The API server or the network failed this poll: the next one retries.
                log.warning("%s/%s: poll failed: %s", scaler.namespace, scaler.name, exc)
                interval_s = 1.0
            await stopped.wait(interval_s)
    finally:
        await scaler.close()


def _ns(namespace: str | None) -> str:
    if namespace is None:  # JobQueue is a namespaced resource: never happens
        raise kopf.PermanentError("JobQueue without a namespace")
    return namespace


def _valid_spec(body: kopf.Body) -> JobQueueSpec:
    try:
        return parse_spec(body.get("spec") or {})
    except ConfigError as exc:
        # The scaling loop reports it as a condition; Kopf posts this as an Event.
        raise kopf.PermanentError(str(exc)) from None


def _live_spec(body: kopf.Body) -> JobQueueSpec:
    """The valid spec with the partitions the queue has (`pinned_partitions`)."""
    spec, refused = pinned_partitions(body, _valid_spec(body))
    if refused:
        kopf.warn(body, reason="PartitionsChangeRefused", message=refused)
    return spec


async def _ensure_group(body: kopf.Body, spec: JobQueueSpec, url: str) -> None:
    redis = async_redis(url, socket_timeout_s=5.0)
    try:
        for keys in partition_keys(spec):
            if await ensure_group(redis, keys, spec.queue_lanes):
                lanes = f" and its lanes ({spec.lanes_text})" if spec.lanes else ""
                kopf.info(
                    body, reason="GroupCreated", message=f"{spec.group} on {keys.stream}{lanes}"
                )
    except (RedisError, OSError) as exc:
        # The Deployment exists already; the scaling loop reports Redis and retries.
        raise kopf.TemporaryError(f"Redis unreachable: {exc!r}", delay=5) from None
    finally:
        await redis.aclose()


async def _delete_keys(
    api: KubeApi, body: kopf.Body, namespace: str, spec: JobQueueSpec, retry: int
) -> None:
    try:
        url = await resolve_redis_url(api, namespace, spec)
        redis = async_redis(url, socket_timeout_s=5.0)
        try:
            removed = 0
            for keys in partition_keys(spec):
                removed += await delete_queue_keys(redis, keys)
        finally:
            await redis.aclose()
    except (ConfigError, RedisError, OSError) as exc:
        if retry + 1 >= DELETE_RETRIES:
            kopf.warn(body, reason="KeysKept", message=f"could not delete the queue keys: {exc!r}")
            return
        raise kopf.TemporaryError(f"deleting the queue keys: {exc!r}", delay=2) from None
    kopf.info(body, reason="KeysDeleted", message=f"{removed} keys of {spec.stream} deleted")


async def run_operator(
    ctx: OperatorContext,
    *,
    server: str | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    configure: Callable[[kopf.OperatorSettings], None] | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (or the process is signalled);
    ``configure`` may adjust Kopf's settings (tests shorten its timeouts)."""
    namespaces = ctx.settings.namespaces
    settings = kopf_settings(ctx)
    if configure is not None:
        configure(settings)
    try:
        await kopf.operator(
            registry=build_registry(ctx, server),
            settings=settings,
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=ctx.settings.standalone,
            priority=ctx.settings.priority,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        if ctx.api is not None:  # when Kopf failed before its cleanup handlers ran
            await ctx.api.close()
