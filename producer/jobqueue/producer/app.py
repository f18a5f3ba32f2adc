"""The producer's aiohttp application: `create_app` wires settings, Redis, the routes
and the middlewares (metrics outermost, then JSON errors, the request deadline, then
authentication)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.client import AsyncClient
from jobqueue.producer import routes_dead, routes_jobs, routes_meta
from jobqueue.producer.auth import TokenSet, auth_middleware
from jobqueue.producer.batching import EnqueueBatcher
from jobqueue.producer.context import (
    BATCHER,
    CLIENT,
    JOB_TYPES,
    METRICS,
    OPENAPI,
    SETTINGS,
    OpenApiDocument,
)
from jobqueue.producer.deadline import deadline_middleware
from jobqueue.producer.errors import error_middleware
from jobqueue.producer.job_types import JobTypes
from jobqueue.producer.metrics import ProducerMetrics, metrics_middleware
from jobqueue.producer.settings import ProducerSettings


def create_app(
    settings: ProducerSettings | None = None,
    redis: AsyncRedis | None = None,
    job_types: JobTypes | None = None,
) -> web.Application:
    """The producer app. With ``redis`` it uses that connection (and leaves it open);
    without, it connects to ``settings.queue.redis_url`` on startup and closes on cleanup.
    ``job_types`` defaults to the file in ``settings.job_types_file`` (or the demo types).
    """
    settings = settings or ProducerSettings()
    metrics = ProducerMetrics()
    middlewares: list[Middleware] = [
        metrics_middleware(metrics),
        error_middleware,
        deadline_middleware(settings.request_deadline_s, settings.max_wait_s),
    ]
    if settings.auth_enabled:
        tokens = TokenSet(settings.auth_tokens, settings.auth_tokens_file)
        middlewares.append(auth_middleware(tokens))
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[JOB_TYPES] = job_types or JobTypes.from_file(settings.job_types_file)
    app[OPENAPI] = OpenApiDocument(app[JOB_TYPES], auth=settings.auth_enabled)
    # Stats before /jobs/{job_id}, so "stats" is never taken for a job id.
    app.add_routes(routes_jobs.routes)
    app.add_routes(routes_dead.routes)
    app.add_routes(routes_meta.routes)
    if redis is not None:
        app[CLIENT] = _client(redis, settings, owns_redis=False)
        app[BATCHER] = EnqueueBatcher(app[CLIENT])
    else:
        app.cleanup_ctx.append(_own_redis)
    return app


def _client(redis: AsyncRedis, settings: ProducerSettings, *, owns_redis: bool) -> AsyncClient:
    return AsyncClient(
        redis,
        settings.queue,
        idempotency_ttl_s=settings.idempotency_ttl_s,
        owns_redis=owns_redis,
    )


async def _own_redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = AsyncClient.from_settings(settings.queue, idempotency_ttl_s=settings.idempotency_ttl_s)
    app[CLIENT] = client
    app[BATCHER] = EnqueueBatcher(client)
    yield
    await client.aclose()
