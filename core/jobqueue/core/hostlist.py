"""The ``host:port[,host:port...]`` list of a URL naming several servers (Sentinel, Cluster)."""

from __future__ import annotations

import urllib.parse

from jobqueue.core.errors import ConfigError


def parse_hosts(
    hostlist: str, *, url_kind: str, member: str, default_port: int
) -> tuple[tuple[str, int], ...]:
    """Each ``host[:port]`` of a comma-separated list (IPv6 hosts in brackets), with
    ``default_port`` where none is given.

    A ConfigError names the ``member`` ("sentinel", "node") and the ``url_kind``
    ("Sentinel", "Cluster") but never repeats the URL, which may hold a password.
    """
    return tuple(
        _host_port(item.strip(), url_kind, member, default_port) for item in hostlist.split(",")
    )


def _host_port(item: str, url_kind: str, member: str, default_port: int) -> tuple[str, int]:
    if not item:
        raise ConfigError(f"a {url_kind} URL needs host:port of at least one {member}")
    parts = urllib.parse.urlsplit(f"//{item}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(
            f"a {member} in the {url_kind} URL has an invalid port "
            "(the port must be a number 1-65535)"
        ) from None
    if not parts.hostname:
        raise ConfigError(f"a {member} in the {url_kind} URL has no host")
    if port == 0:
        raise ConfigError(f"a {member} in the {url_kind} URL has an invalid port (0)")
    return parts.hostname, port or default_port
