"""Errors a real Redis answers around a failover: 503 with Retry-After, never a 500.

A master with ``min-replicas-to-write`` and too few replicas answers ``-NOREPLICAS``; a
replica cut off from its master with ``replica-serve-stale-data no`` answers
``-MASTERDOWN`` to everything; a replica promoted with ``REPLICAOF NO ONE`` has none of
the producer's scripts (``-NOSCRIPT``). Each is set on a real redis-server of the test.
"""

from __future__ import annotations

import time

import redis
from producer.http_api import README_EXAMPLE, StartApi
from support.redis_server import RedisServer, free_port
from support.sentinel_setup import Sentinel

from jobqueue.core import redis_errors
from jobqueue.core.connection import async_redis


async def test_too_few_replicas_to_write_is_503_not_enqueued_then_202(
    start_api: StartApi, own_redis: RedisServer
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    redis_client = async_redis(own_redis.url, socket_timeout_s=5.0)
    api = await start_api(redis=redis_client)
    try:
        client.config_set("min-replicas-to-write", 1)  # it has none

        status, body = await api.call("POST", "/jobs", data=README_EXAMPLE)
        assert status == 503, body
        assert (body["error"], body["outcome"]) == ("Redis unavailable", "not_enqueued"), body
        assert "NoReplicasError" in body["detail"]
        batch = b'{"jobs": [' + b",".join([README_EXAMPLE] * 3) + b"]}"
        status, body = await api.call("POST", "/jobs/batch", data=batch)
        assert (status, body["outcome"], len(body["jobIds"])) == (503, "not_enqueued", 3), body

        client.config_set("min-replicas-to-write", 0)
        status, body = await api.call("POST", "/jobs", data=README_EXAMPLE)
        assert status == 202, body
    finally:
        await redis_client.aclose()
        client.close()


async def test_a_replica_cut_off_from_its_master_is_503_on_every_route(
    start_api: StartApi, own_redis: RedisServer
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    redis_client = async_redis(own_redis.url, socket_timeout_s=5.0)
    api = await start_api(redis=redis_client)
    before = redis_errors.count("producer", "readonly")
    try:
        client.config_set("replica-serve-stale-data", "no")
        client.replicaof("127.0.0.1", free_port())  # nobody listens: the link stays down

        for method, path in [
            ("GET", "/jobs/stats"),
            ("GET", "/jobs/01ANYJOB"),
            ("GET", "/dead"),
            ("DELETE", "/jobs/01ANYJOB"),
            ("POST", "/jobs"),
        ]:
            data = README_EXAMPLE if path == "/jobs" else None
            status, body = await api.call(method, path, data=data)
            assert status == 503, (method, path, body)
            assert "Traceback" not in str(body)
        assert redis_errors.count("producer", "readonly") > before

        client.replicaof("NO", "ONE")
        status, body = await api.call("POST", "/jobs", data=README_EXAMPLE)
        assert status == 202, body
    finally:
        await redis_client.aclose()
        client.close()


async def test_a_promoted_replica_without_the_scripts_takes_jobs(
    start_api: StartApi, own_redis: RedisServer
) -> None:
    replica = RedisServer(
        own_redis.directory.parent / "replica",
        extra_args=("--replicaof", "127.0.0.1", str(own_redis.port)),
    )
    replica.start()
    primary = redis.Redis.from_url(own_redis.url)
    promoted = redis.Redis.from_url(replica.url)
    redis_client = async_redis(replica.url, socket_timeout_s=5.0)
    api = await start_api(redis=redis_client)
    try:
        status, body = await api.call("POST", "/jobs", data=README_EXAMPLE)
        assert (status, body["outcome"]) == (503, "not_enqueued"), body  # READONLY

        promoted.replicaof("NO", "ONE")
        promoted.script_flush()
        status, body = await api.call("POST", "/jobs", data=README_EXAMPLE)
        assert status == 202, body
        batch = b'{"jobs": [' + b",".join([README_EXAMPLE] * 600) + b"]}"
        promoted.script_flush()  # a batch this big is several script calls in one MULTI
        status, body = await api.call("POST", "/jobs/batch", data=batch)
        assert status == 202, body
        assert primary.ping()
    finally:
        await redis_client.aclose()
        primary.close()
        promoted.close()
        replica.stop()


async def test_an_error_redis_answers_that_is_not_an_outage_is_still_503(
    start_api: StartApi, own_redis: RedisServer
) -> None:
    # A sentinel where the master was (its port reused after the master died) answers
    # every command the producer sends "ERR unknown command": no class of unavailability,
    # yet Redis's trouble, not the caller's.
    sentinel = Sentinel(own_redis.directory.parent / "sentinel", own_redis.port, 5000, 60000)
    sentinel.start()
    _wait_answering(sentinel.client())
    redis_client = async_redis(f"redis://127.0.0.1:{sentinel.port}/0", socket_timeout_s=5.0)
    api = await start_api(redis=redis_client)
    try:
        status, body = await api.call("POST", "/jobs", data=README_EXAMPLE)
        assert status == 503, body
        assert (body["outcome"], bool(body["jobId"])) == ("unknown", True), body
        assert "ResponseError" in body["detail"]
        for path in ("/jobs/stats", "/jobs/01ANYJOB", "/dead"):
            status, body = await api.call("GET", path)
            assert (status, body["error"]) == (503, "Redis error"), (path, body)
    finally:
        await redis_client.aclose()
        sentinel.stop()


def _wait_answering(client: redis.Redis, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        client.close()
