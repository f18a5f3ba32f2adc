"""Health, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio

from aiohttp import web

from jobqueue.producer.context import CLIENT, METRICS, OPENAPI
from jobqueue.producer.errors import json_error
from jobqueue.producer.models import HealthOut
from jobqueue.producer.routes_jobs import json_response

routes = web.RouteTableDef()
READY_TIMEOUT_S = 2.0
"""Longest a readiness check waits for Redis's PING, in seconds."""


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process serves requests (Redis is not consulted: a Redis outage is not a
    reason to restart the producer)."""
    return json_response(HealthOut(status="ok"))


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready when Redis answers PING within `READY_TIMEOUT_S`."""
    try:
        await asyncio.wait_for(request.app[CLIENT].ping(), READY_TIMEOUT_S)
    except TimeoutError:
        return json_error(503, "Redis unavailable", "PING timed out")
    return json_response(HealthOut(status="ready"))


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    return request.app[METRICS].render()


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI].document())
