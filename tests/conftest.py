"""Fixtures every test may use: a private Redis per session, flushed for each test."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from support import xdist_scheduling
from support.redis_server import RedisServer

from jobqueue.core.connection import async_redis


def pytest_configure(config: pytest.Config) -> None:
    # Local mode started by a test records its queue in a state file the client commands
    # follow (jobqueue.core.dev_state): keep the session's own, never the user's.
    state_dir = Path(tempfile.mkdtemp(prefix="jobqueue-test-state-"))
    # Under xdist this runs in every worker too: each has a state file of its own.
    os.environ["JOBQUEUE_DEV_STATE_FILE"] = str(state_dir / "dev.json")
    _children_hear_sigint()
    if config.getoption("numprocesses", None):
        xdist_scheduling.open_channel()


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


PER_WORKER_FIXTURES = {"redis_server", "default_objects", "all_on_objects", "manifest_objects"}
"""Session fixtures cheap enough that each xdist worker sets up its own."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    xdist_scheduling.publish(items, _xdist_groups(items))
    if config.getoption("--with-e2e"):
        return
    skip = pytest.mark.skip(reason="needs a Kubernetes cluster: run with --with-e2e")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_report_to_serializable(
    config: pytest.Config, report: pytest.TestReport | pytest.CollectReport
) -> Generator[None, dict[str, Any] | None, dict[str, Any] | None]:
    """Reports as xdist sends them from a worker, with lone surrogates spelled out.

    Tests feed the producer bytes that are not UTF-8 and Python carries them as lone
    surrogates (surrogateescape) into captured logs and assertion messages; xdist's
    channel encodes strictly as UTF-8, and one such report crashes the worker.
    """
    data = yield
    return None if data is None else _spelled_out(data)


def _spelled_out(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_spelled_out(k): _spelled_out(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_spelled_out(v) for v in value)
    return value


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadgroup":
        return None
    return xdist_scheduling.GroupScheduling(config, log)


def _xdist_groups(items: list[pytest.Item]) -> dict[str, str]:
    """Node id -> xdist group of the tests that share an expensive fixture wider than
    a test.

    Under ``--dist loadgroup`` (scripts/test) a group runs on one worker, in collection
    order, so such a fixture is set up once, not once per worker. A module with a
    module-scoped fixture (a built wheel, a Sentinel setup, a replica of the session's
    Redis) is one group, all its tests in their order, as without xdist: a test there
    may rely on running before the fixture exists. The users of an expensive session
    fixture (the 3+3 Redis Cluster, whose tests must not overlap either) are one group.
    Fixtures of plugins are not ours. See support/xdist_scheduling.py.
    """
    modules: set[str] = set()
    sessions: dict[str, str] = {}
    for item in items:
        for name, scope in _own_fixture_scopes(item):
            if scope in ("module", "package", "class"):
                modules.add(_module_of(item))
            elif scope == "session" and name not in PER_WORKER_FIXTURES:
                sessions.setdefault(item.nodeid, name)
    groups = {}
    for item in items:
        if _module_of(item) in modules:
            groups[item.nodeid] = _module_of(item)
        elif item.nodeid in sessions:
            groups[item.nodeid] = sessions[item.nodeid]
    return groups


def _module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


def _own_fixture_scopes(item: pytest.Item) -> Iterator[tuple[str, str]]:
    info = getattr(item, "_fixtureinfo", None)
    for name in sorted(item.fixturenames) if info is not None else []:
        definitions = info.name2fixturedefs.get(name)
        if definitions and definitions[-1].baseid:  # defined in tests/, not by a plugin
            yield name, definitions[-1].scope


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
