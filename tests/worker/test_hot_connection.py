"""The worker's own pipelined Redis connection: replies in order, failures as redis-py's."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
import redis
from redis.exceptions import BusyLoadingError, ConnectionError, ResponseError, TimeoutError
from support.redis_server import RedisServer, free_port

from jobqueue.worker.hot_connection import HotConnection


async def test_pipelined_replies_come_back_in_order_with_errors_in_place(redis_url: str) -> None:
    hot = HotConnection(redis_url)
    replies = await hot.call(
        ("SET", "a", "1"),
        ("INCR", "a"),
        ("XREADGROUP", "GROUP", "nogroup", "c", "STREAMS", "nostream", ">"),
        ("GET", "a"),
        timeout_s=5,
    )
    assert replies[:2] == [True, 2] or replies[:2] == ["OK", 2]
    assert isinstance(replies[2], ResponseError)
    assert "NOGROUP" in str(replies[2])
    assert replies[3] == "2"
    hot.close()


async def test_several_requests_on_the_wire_resolve_in_order(redis_url: str) -> None:
    hot = HotConnection(redis_url)
    await hot.connect()
    sent = [hot.send(("INCR", "n"), ("GET", "n")) for _ in range(50)]
    results = [await hot.wait(s, 5) for s in sent]
    assert results == [[n, str(n)] for n in range(1, 51)]
    hot.close()


async def test_a_loading_reply_is_the_transient_busy_loading_error(redis_url: str) -> None:
    hot = HotConnection(redis_url)
    [reply] = await hot.call(("EVAL", "return redis.error_reply('LOADING x')", 0), timeout_s=5)
    assert isinstance(reply, BusyLoadingError)
    hot.close()


async def test_a_dropped_connection_fails_the_waiting_request_and_the_next_call_reconnects(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    hot = HotConnection(redis_url, name="hot-test")
    await hot.connect()
    blocked = hot.send(("BLPOP", "never", 10))
    await asyncio.sleep(0.1)
    sync_redis.client_kill_filter(_type="normal", skipme=True)  # drops every other client
    with pytest.raises(ConnectionError):
        await hot.wait(blocked, 5)
    assert await hot.call(("PING",), timeout_s=5) in (["PONG"], [True])
    hot.close()


async def test_a_server_restart_is_ridden_out_by_reconnecting(own_redis: RedisServer) -> None:
    hot = HotConnection(own_redis.url)
    await hot.call(("SET", "kept", "yes"), timeout_s=5)
    own_redis.restart()  # AOF: the write survives
    with pytest.raises(ConnectionError):
        await hot.call(("GET", "kept"), timeout_s=5)  # the old connection is gone
    assert await hot.call(("GET", "kept"), timeout_s=5) == ["yes"]
    hot.close()


async def test_no_reply_in_time_is_a_timeout_and_the_connection_is_replaced(
    redis_url: str,
) -> None:
    hot = HotConnection(redis_url)
    with pytest.raises(TimeoutError):
        await hot.call(("BLPOP", "never", 5), timeout_s=0.2)
    # the late BLPOP reply must not be taken for the next command's
    assert await hot.call(("ECHO", "next"), timeout_s=5) == ["next"]
    hot.close()


async def test_a_refused_connection_is_a_connection_error() -> None:
    hot = HotConnection(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(ConnectionError, match="cannot connect"):
        await hot.call(("PING",), timeout_s=5)


async def test_credentials_and_database_come_from_the_url(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", password="s3cret")
    server.start()
    try:
        hot = HotConnection(f"redis://:s3cret@127.0.0.1:{server.port}/3", name="jq-test")
        await hot.call(("SET", "where", "db3"), timeout_s=5)
        check = redis.Redis(port=server.port, password="s3cret", db=3, decode_responses=True)
        assert check.get("where") == "db3"
        assert "jq-test" in [c["name"] for c in check.client_list()]
        check.close()
        hot.close()

        wrong = HotConnection(f"redis://:nope@127.0.0.1:{server.port}/0")
        with pytest.raises(ConnectionError, match="refused"):
            await wrong.call(("PING",), timeout_s=5)
    finally:
        server.stop()


async def test_rediss_urls_speak_tls(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_cert = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    make_cert += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    make_cert += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(make_cert, check=True, capture_output=True)  # noqa: ASYNC221 (setup)
    tls_port = free_port()
    tls = ("--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key))
    tls += ("--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no")
    server = RedisServer(tmp_path / "redis", extra_args=tls)
    server.start()
    try:
        hot = HotConnection(f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}")
        assert await hot.call(("ECHO", "over tls"), timeout_s=5) == ["over tls"]
        hot.close()
        untrusted = HotConnection(f"rediss://127.0.0.1:{tls_port}/0")
        with pytest.raises(ConnectionError):
            await untrusted.call(("PING",), timeout_s=5)
    finally:
        server.stop()


async def test_a_peer_that_does_not_speak_resp_fails_the_call_instead_of_hanging() -> None:
    # a TCP server that answers anything with bytes that are not RESP
    async def garbage(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        hot = HotConnection(f"redis://127.0.0.1:{port}/0")
        with pytest.raises(ConnectionError, match="not RESP"):
            await hot.call(("PING",), timeout_s=5)
        assert not hot.connected
    finally:
        server.close()
        await server.wait_closed()


async def test_unix_socket_urls_connect_to_the_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = RedisServer(tmp_path / "redis", extra_args=("--unixsocket", str(socket_path)))
    server.start()
    try:
        hot = HotConnection(f"unix://{socket_path}?db=2")
        await hot.call(("SET", "via", "socket"), timeout_s=5)
        hot.close()
        check = redis.Redis(port=server.port, db=2, decode_responses=True)
        assert check.get("via") == "socket"
        check.close()
    finally:
        server.stop()


async def test_a_readonly_reply_drops_the_connection_so_the_next_connect_finds_the_master(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # A server demoted to a replica in a failover answers writes with READONLY; staying
    # on it would fail every write until a restart.
    replica = RedisServer(
        tmp_path / "replica", extra_args=("--replicaof", "127.0.0.1", str(redis_server.port))
    )
    replica.start()
    try:
        hot = HotConnection(replica.url)
        await hot.connect()
        with pytest.raises(ConnectionError, match="replica"):
            await hot.call(("XADD", "s", "*", "f", "v"), timeout_s=5)
        assert not hot.connected
        hot.close()
    finally:
        replica.stop()
