"""The host list of a multi-server URL: ports, defaults, IPv6, and errors that say why."""

from __future__ import annotations

import pytest

from jobqueue.core.errors import ConfigError
from jobqueue.core.hostlist import parse_hosts


def test_hosts_keep_their_order_and_take_the_default_port_where_none_is_given() -> None:
    hosts = parse_hosts("a:1, b ,[::1]:3", url_kind="Cluster", member="node", default_port=6379)
    assert hosts == (("a", 1), ("b", 6379), ("::1", 3))


@pytest.mark.parametrize(
    ("hostlist", "says"),
    [
        ("", "at least one node"),
        ("a:1,", "at least one node"),
        ("a:7x", "invalid port"),
        ("a:70000", "port must be a number"),
        ("a:0", "invalid port"),
        (":1", "has no host"),
    ],
)
def test_a_bad_host_list_is_a_config_error_saying_what_is_wrong(hostlist: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_hosts(hostlist, url_kind="Cluster", member="node", default_port=6379)


def test_the_error_never_repeats_the_list() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_hosts("secret-host:bad", url_kind="Sentinel", member="sentinel", default_port=26379)
    assert "secret-host" not in str(raised.value)
