"""``redis+sentinel://`` URLs: parsed in one place, bad ones a clear error without the password."""

from __future__ import annotations

import pytest

from jobqueue.core.connection import KINDS, SENTINEL, kind_of
from jobqueue.core.errors import ConfigError
from jobqueue.core.sentinel import SentinelUrl
from jobqueue.core.settings import QueueSettings


def test_hosts_service_database_and_credentials_are_parsed() -> None:
    url = SentinelUrl.parse("redis+sentinel://app:s%40cret@10.0.0.1:26380,[::1],s3:5/jq/3")
    assert url.sentinels == (("10.0.0.1", 26380), ("::1", 26379), ("s3", 5))
    assert url.service_name == "jq"
    assert url.master_options == {"username": "app", "password": "s@cret", "db": 3}
    assert "password" not in url.sentinel_options  # the sentinels' own auth is separate
    assert not url.tls


def test_sentinel_credentials_are_their_own_query_options() -> None:
    url = SentinelUrl.parse(
        "redis+sentinel://:master-pw@h:1/jq?sentinel_username=mon&sentinel_password=sent-pw"
    )
    assert url.master_options == {"password": "master-pw"}
    assert url.sentinel_options["username"] == "mon"
    assert url.sentinel_options["password"] == "sent-pw"


def test_rediss_sentinel_means_tls_to_master_and_sentinels_unless_told_otherwise() -> None:
    both = SentinelUrl.parse("rediss+sentinel://h:1/jq?ssl_cert_reqs=none")
    assert both.tls
    assert both.sentinel_options["ssl"] is True
    assert both.sentinel_options["ssl_cert_reqs"] == "none"
    master_only = SentinelUrl.parse("rediss+sentinel://h:1/jq?sentinel_tls=no")
    assert master_only.tls
    assert "ssl" not in master_only.sentinel_options


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://:pw@h:1/", "names the master set"),
        ("redis+sentinel://:pw@h:1/jq/0/extra", "names the master set"),
        ("redis+sentinel://:pw@h:port/jq", "invalid port"),
        ("redis+sentinel://:pw@/jq", "at least one sentinel"),
        ("redis+sentinel://:pw@h:1,/jq", "at least one sentinel"),
        ("redis+sentinel://:pw@h:1/jq/zero", "must be a number"),
        ("redis+sentinel://:pw@h:1/jq?socket_timeout=soon", "bad option"),
    ],
)
def test_a_bad_sentinel_url_says_why_and_never_repeats_the_password(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        QueueSettings(redis_url=url)
    assert "pw" not in str(caught.value)


def test_every_process_reads_the_url_through_one_scheme_dispatch() -> None:
    assert kind_of("redis+sentinel://h:1/jq") is SENTINEL
    assert kind_of("rediss+sentinel://h:1/jq") is SENTINEL
    assert {"redis", "rediss", "unix"} <= set(KINDS)
    with pytest.raises(ConfigError, match=r"redis\+sentinel://"):
        kind_of("sentinel://h:1/jq")
