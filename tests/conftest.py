"""Fixtures every test may use: a private Redis per session, flushed for each test."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from support.redis_server import RedisServer

from jobqueue.core.connection import async_redis


def pytest_configure(config: pytest.Config) -> None:
    # Local mode started by a test records its queue in a state file the client commands
    # follow (jobqueue.core.dev_state): keep the session's own, never the user's.
    state_dir = Path(tempfile.mkdtemp(prefix="jobqueue-test-state-"))
    os.environ["JOBQUEUE_DEV_STATE_FILE"] = str(state_dir / "dev.json")
    _children_hear_sigint()


def _children_hear_sigint() -> None:
    """Start every child with SIGINT at its default, as a terminal or a container does.

    A runner started in the background by a non-interactive shell (CI steps, `cmd &`)
    ignores SIGINT, and an ignored signal stays ignored across fork and exec: a worker
    or dev process would then ignore a test's Ctrl-C until its own handlers are
    installed, a second or more into start-up under load, and a test signalling it
    before that waits for an exit that never comes. A handled signal is reset to its
    default across exec, so handling it here is enough.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--with-e2e",
        action="store_true",
        default=False,
        help="run the end-to-end tests that need a real Kubernetes cluster (kind/k3d)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--with-e2e"):
        return
    skip = pytest.mark.skip(reason="needs a Kubernetes cluster: run with --with-e2e")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private redis-server for the whole session (never the shared 6379)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's Redis, flushed before the test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[AsyncRedis]:
    """An asyncio client of the session's Redis, strings decoded."""
    client = async_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, with AOF on, that the test may kill and restart."""
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    server.stop()
