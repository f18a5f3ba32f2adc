"""One private Redis Cluster (3 primaries, 3 replicas) for the cluster tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.redis_cluster import RedisCluster


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster(redis_cluster: RedisCluster) -> RedisCluster:
    """The session's cluster, every primary flushed and every slot served."""
    redis_cluster.wait_ok()
    for node in redis_cluster.primaries():
        with redis_cluster.client(node.port) as client:
            client.flushall()
    return redis_cluster
