"""Talking to a producer over real HTTP in tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse, ClientSession
from aiohttp.test_utils import TestServer

from jobqueue.producer.job_types import DEMO_JOB_TYPES, JobTypes

README_EXAMPLE = b'{"type":"email","payload":{"to":"user@example.com","template":"welcome"}}'
"""The reference design's curl example body, byte for byte."""
TEST_TYPES = JobTypes({**DEMO_JOB_TYPES, "record": None, "noop": None})


@dataclass
class Api:
    """A running producer and an HTTP session to it."""

    server: TestServer
    session: ClientSession

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, decoded JSON body) of one request."""
        async with self.session.request(method, self.url(path), **kwargs) as response:
            return response.status, await _json(response)


async def _json(response: ClientResponse) -> Any:
    assert response.content_type == "application/json", await response.text()
    return await response.json()


StartApi = Callable[..., Awaitable["Api"]]
