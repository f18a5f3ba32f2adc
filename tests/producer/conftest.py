"""Fixtures of the producer tests: the app served over real HTTP on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from producer.http_api import TEST_TYPES, Api, StartApi
from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.settings import QueueSettings
from jobqueue.producer.app import create_app
from jobqueue.producer.settings import ProducerSettings


@pytest.fixture
async def start_api(redis_client: AsyncRedis) -> AsyncIterator[StartApi]:
    """Start a producer with the given `ProducerSettings` fields (and optionally its own
    ``redis``) on a free port; all are stopped after the test."""
    started: list[Api] = []

    async def start(redis: AsyncRedis | None = None, **fields: Any) -> Api:
        fields.setdefault("queue", QueueSettings(status_ttl_s=3600))
        app: web.Application = create_app(
            ProducerSettings(**fields), redis=redis or redis_client, job_types=TEST_TYPES
        )
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        api = Api(server, ClientSession())
        started.append(api)
        return api

    yield start
    for api in started:
        await api.session.close()
        await api.server.close()


@pytest.fixture
async def api(start_api: StartApi) -> Api:
    """A producer with authentication off."""
    return await start_api()
