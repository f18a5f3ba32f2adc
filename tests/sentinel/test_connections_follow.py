"""Both kinds of connection follow a Sentinel failover without being recreated."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from redis.exceptions import ConnectionError, TimeoutError
from support.sentinel_setup import SentinelSetup, TlsFiles

from jobqueue.core.connection import async_redis
from jobqueue.worker.hot_connection import HotConnection

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
T = TypeVar("T")


async def until_it_works(call: Callable[[], Awaitable[T]], timeout_s: float = 60.0) -> T:
    """``call()`` once the failover lets it succeed; Redis errors before that are expected."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await call()
        except (ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_the_shared_client_and_the_hot_connection_find_the_new_master(
    tmp_path: Path,
) -> None:
    setup = SentinelSetup(tmp_path)
    setup.start()
    client = async_redis(setup.url, socket_timeout_s=5.0)
    hot = HotConnection(setup.url, name="follow-test")
    try:
        await client.set("before", "1")
        assert await hot.call(("INCR", "hot"), timeout_s=5) == [1]
        old = await asyncio.to_thread(setup.kill_primary)
        new = await asyncio.to_thread(setup.wait_for_failover, old)

        assert await until_it_works(lambda: client.incr("after")) == 1
        assert await until_it_works(lambda: hot.call(("INCR", "hot"), timeout_s=5)) in ([2], [1])
        # Both now talk to the new master (the replica, promoted), not to a stale address.
        [name] = await hot.call(("CLIENT", "GETNAME"), timeout_s=5)
        assert name == "follow-test"
        assert int((await client.info("server"))["tcp_port"]) == new
        [info] = await hot.call(("INFO", "server"), timeout_s=5)
        assert f"tcp_port:{new}" in info
    finally:
        await hot.aclose()
        await client.aclose()
        setup.stop()


async def test_master_and_sentinel_credentials_are_each_used_where_they_belong(
    tmp_path: Path,
) -> None:
    # Given servers that require one password and sentinels that require another
    setup = SentinelSetup(tmp_path, password="m-pw", sentinel_password="s-pw")
    setup.start()
    try:
        # Then the URL's userinfo reaches the master and sentinel_password the sentinels
        client = async_redis(setup.url, socket_timeout_s=5.0)
        hot = HotConnection(setup.url)
        try:
            assert await client.incr("n") == 1
            assert await hot.call(("INCR", "n"), timeout_s=5) == [2]
        finally:
            await hot.aclose()
            await client.aclose()
        # And a wrong sentinel password is a connection error naming no password
        wrong = async_redis(setup.url.replace("s-pw", "nope"), socket_timeout_s=5.0)
        try:
            with pytest.raises(ConnectionError) as caught:
                await wrong.get("n")
            assert "No master found" in str(caught.value)
            assert "nope" not in str(caught.value)
            assert "m-pw" not in str(caught.value)
        finally:
            await wrong.aclose()
    finally:
        setup.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the certificates")
async def test_rediss_sentinel_speaks_tls_to_the_sentinels_and_the_master(
    tmp_path: Path,
) -> None:
    # Given servers and sentinels that speak TLS only, under a private CA
    setup = SentinelSetup(tmp_path / "redis", tls=TlsFiles.make(tmp_path / "tls"))
    setup.start()
    try:
        assert setup.url.startswith("rediss+sentinel://")
        # Then both kinds of connection verify the servers with the URL's CA and work
        client = async_redis(setup.url, socket_timeout_s=5.0)
        hot = HotConnection(setup.url)
        try:
            assert await client.incr("n") == 1
            assert await hot.call(("INCR", "n"), timeout_s=5) == [2]
        finally:
            await hot.aclose()
            await client.aclose()
    finally:
        setup.stop()
