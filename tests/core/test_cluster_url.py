"""The ``redis+cluster://`` URL: what it names, and the settings it cannot go with."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import SSLConnection

from jobqueue.core.cluster import ClusterUrl
from jobqueue.core.connection import check_url
from jobqueue.core.errors import ConfigError
from jobqueue.core.settings import QueueSettings


def test_the_seeds_credentials_and_tls_options_come_from_the_url() -> None:
    parsed = ClusterUrl.parse("rediss+cluster://u:pw@n0:7000,n1,[::1]:7002/0?ssl_cert_reqs=none")
    assert parsed.seeds == (("n0", 7000), ("n1", 6379), ("::1", 7002))
    assert (parsed.node_options["username"], parsed.node_options["password"]) == ("u", "pw")
    assert parsed.node_options["connection_class"] is SSLConnection
    assert parsed.node_options["ssl_cert_reqs"] == "none"
    assert "db" not in parsed.node_options
    assert "host" not in parsed.node_options


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://:pw@n0:7000/2", "database 0 only"),
        ("redis+cluster://:pw@n0:99999", "port must be a number"),
        ("redis+cluster://:pw@", "at least one node"),
    ],
)
def test_a_bad_cluster_url_says_why_without_its_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        check_url(url)
    assert "pw" not in str(caught.value)


def test_replicated_enqueue_is_a_setting_a_cluster_takes_too() -> None:
    settings = QueueSettings(redis_url="redis+cluster://n0:7000", enqueue_min_replicas=1)
    assert settings.enqueue_min_replicas == 1
