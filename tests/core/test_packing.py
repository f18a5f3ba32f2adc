"""Commands packed by hiredis are the bytes redis-py would send, whatever the values."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from jobqueue.core.connection import async_redis
from jobqueue.core.packing import hiredis_packing

Packing = hiredis_packing(Connection)


def packed(connection: Connection, *args: object) -> bytes:
    return b"".join(connection.pack_command(*args))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "args",
    [
        ("SET", "key", "value"),
        ("EVALSHA", "a" * 40, 2, "k1", "k2", "text", b"bytes", 0, -7, 2.5, 1e20),
        ("XADD", "s", "*", "payload", '{"to": "é ✓ 😀"}', "empty", ""),
        ("SET", "key", "\udcff\udcfe lone surrogates: bytes that were not UTF-8"),
        ("CLIENT KILL", "TYPE", "normal"),  # a name with a space is split, as redis-py does
        ("SET", "key", memoryview(b"view")),
    ],
)
def test_the_bytes_are_redis_pys_own(args: tuple[object, ...]) -> None:
    ours, theirs = (
        Packing(encoding_errors="surrogateescape"),
        Connection(encoding_errors="surrogateescape"),
    )
    assert packed(ours, *args) == packed(theirs, *args)


@pytest.mark.parametrize("value", [None, True, {"a": 1}])
def test_a_value_redis_py_refuses_is_refused_alike(value: object) -> None:
    with pytest.raises(DataError):
        Packing().pack_command("SET", "key", value)  # type: ignore[arg-type]


def test_one_subclass_per_connection_class() -> None:
    assert hiredis_packing(Connection) is Packing
    assert issubclass(Packing, Connection)


async def test_the_shared_client_packs_with_hiredis_and_round_trips_foreign_bytes(
    redis_url: str,
) -> None:
    client: AsyncRedis = async_redis(redis_url)
    try:
        assert client.connection_pool.connection_class is Packing
        # bytes that are not UTF-8 arrive as lone surrogates and go back as they came
        await client.set("foreign", "\udcff\udcfe")
        assert await client.get("foreign") == "\udcff\udcfe"
        raw = AsyncRedis.from_url(redis_url)
        try:
            assert await raw.get("foreign") == b"\xff\xfe"
        finally:
            await raw.aclose()
    finally:
        await client.aclose()
