"""Redis errors by kind: each kind provoked on a real redis-server, then classified."""

from __future__ import annotations

import pytest
import redis
from support.redis_server import RedisServer, free_port

from jobqueue.core import redis_errors
from jobqueue.core.redis_errors import kind_of


def caught(call: object) -> Exception:
    with pytest.raises(redis.exceptions.RedisError) as info:
        call()  # type: ignore[operator]
    return info.value


def test_every_kind_from_a_real_server(own_redis: RedisServer) -> None:
    client = redis.Redis.from_url(own_redis.url, socket_timeout=0.2)
    client.set("a-string", "x")
    nowhere = redis.Redis(port=free_port(), socket_connect_timeout=1)

    errors = {
        "connection": caught(nowhere.ping),
        "timeout": caught(lambda: client.blpop(["never"], timeout=1)),
        "other": caught(lambda: client.lpush("a-string", "x")),  # WRONGTYPE
    }
    client = redis.Redis.from_url(own_redis.url)
    client.config_set("maxmemory", 1)
    errors["oom"] = caught(lambda: client.set("more", "x" * 1000))
    client.config_set("maxmemory", 0)
    client.replicaof("127.0.0.1", free_port())
    errors["readonly"] = caught(lambda: client.set("more", "x"))
    client.replicaof("NO", "ONE")
    client.config_set("requirepass", "s3cret")
    errors["auth"] = caught(redis.Redis.from_url(own_redis.url).ping)

    assert {kind: kind_of(exc) for kind, exc in errors.items()} == {k: k for k in errors}
    assert set(errors) == set(redis_errors.KINDS)


def test_recorded_errors_are_counted_per_component_and_kind() -> None:
    before = redis_errors.count("producer", "timeout")
    redis_errors.record("producer", redis.exceptions.TimeoutError("slow"))
    assert redis_errors.count("producer", "timeout") == before + 1
