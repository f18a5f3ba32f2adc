"""Talking to a producer over real HTTP in tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientResponse, ClientSession
from aiohttp.test_utils import TestServer
from support.redis_server import free_port

from jobqueue.producer.job_types import DEMO_JOB_TYPES, JobTypes

README_EXAMPLE = b'{"type":"email","payload":{"to":"user@example.com","template":"welcome"}}'
"""The reference design's curl example body, byte for byte."""
JSON = b"application/json"
TEST_TYPES = JobTypes(
    {**DEMO_JOB_TYPES, **dict.fromkeys(["record", "noop", "sleep", "crash", "echo"])}
)
"""The demo types plus those of `jobqueue.worker.testing:app`, any payload."""


@dataclass
class Api:
    """A running producer and an HTTP session to it."""

    server: TestServer
    session: ClientSession

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, decoded JSON body) of one request; a ``data`` body goes as JSON
        unless ``headers`` name another Content-Type."""
        if "data" in kwargs:
            kwargs["headers"] = {"Content-Type": "application/json", **kwargs.get("headers", {})}
        async with self.session.request(method, self.url(path), **kwargs) as response:
            return response.status, await _json(response)


async def _json(response: ClientResponse) -> Any:
    assert response.content_type == "application/json", await response.text()
    return await response.json()


StartApi = Callable[..., Awaitable["Api"]]


class ProducerProcess:
    """``jobqueue producer`` in a subprocess on a free port, for signal and fuzz tests.

    Its log goes to a file (a pipe nobody reads could fill and stall it); `output`
    returns the end of it for assertion messages.
    """

    def __init__(self, redis_url: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        binary = Path(sys.executable).with_name("jobqueue")
        environ = {**os.environ, "REDIS_URL": redis_url, **env}
        environ["JOBQUEUE_PRODUCER_PORT"] = str(self.port)
        environ["JOBQUEUE_PRODUCER_HOST"] = "127.0.0.1"
        log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
        self.log_path = log_dir / f"producer-{os.getpid()}-{time.monotonic_ns()}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(binary), "producer"], env=environ, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_healthy()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def _wait_healthy(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"producer exited:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"producer did not become healthy:\n{self.output()}")

    def stop(self) -> None:
        """Kill it if still running, and remove its log."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log_path.unlink(missing_ok=True)


@dataclass
class RawAnswer:
    """A response read off the socket: status, lower-cased headers, body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self
        return orjson.loads(self.body)


async def raw_request(host: str, port: int, request: bytes, timeout_s: float = 30) -> RawAnswer:
    """Send ``request`` byte for byte (headers no HTTP client would send) and read the
    one response (the connection is closed after it)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout_s):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length)
    finally:
        writer.close()
    return RawAnswer(int(lines[0].split()[1]), headers, body)


def post_bytes(path: str, body: bytes, headers: bytes = b"", content_type: bytes = JSON) -> bytes:
    """A ``POST`` request with ``headers`` (raw lines, each ending in CRLF)."""
    return (
        b"POST %s HTTP/1.1\r\nHost: producer\r\nConnection: close\r\nContent-Type: %s\r\n"
        b"Content-Length: %d\r\n%s\r\n%s" % (path.encode(), content_type, len(body), headers, body)
    )
