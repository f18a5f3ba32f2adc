"""Redis behind Sentinel: the ``redis+sentinel://`` URL and the clients it opens.

::

    redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db][?options]
    rediss+sentinel://...     TLS to the master and (unless sentinel_tls=no) the sentinels

The hosts are the sentinels (port 26379 when left out), ``service_name`` the master
set they watch. The credentials in the URL are the master's (and its replicas');
sentinels that ask for their own give them as query options ``sentinel_username`` and
``sentinel_password``. Every other query option is redis-py's for the master
connection (``ssl_ca_certs``, ``ssl_cert_reqs``, ``socket_timeout``...) and applies to
the sentinels too when it is a TLS option. No connection asks a sentinel once and
keeps the answer: each new connection asks which server is the master now, so a
failover is followed by reconnecting (redis-py's `SentinelConnectionPool` does that for
the shared clients, `jobqueue.core.connection.Endpoint` for a single connection).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

from jobqueue.core.errors import ConfigError
from jobqueue.core.hostlist import parse_hosts
from jobqueue.core.packing import hiredis_packing

SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379
SENTINEL_TIMEOUT_S = 2.0
"""How long one sentinel may take to answer (or accept a connection), seconds: a dead
sentinel must not hold up asking the next."""
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password", "sentinel_tls")


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    master_options: dict[str, Any] = field(hash=False)
    """redis-py connection options of the master: credentials, ``db``, TLS options,
    ``connection_class`` (`SSLConnection` for TLS); no host or port."""
    sentinel_options: dict[str, Any] = field(hash=False)
    """redis-py client options of the sentinels: timeouts, their credentials and TLS."""

    @property
    def tls(self) -> bool:
        return self.master_options.get("connection_class") is SSLConnection

    @classmethod
    def parse(cls, url: str) -> SentinelUrl:
        """The parts of ``url``; ConfigError saying what is wrong (never repeating the
        URL, which may hold a password)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ConfigError(f"a Sentinel URL starts with {' or '.join(SCHEMES)}://")
        userinfo, _, hostlist = parts.netloc.rpartition("@")
        sentinels = parse_hosts(
            hostlist, url_kind="Sentinel", member="sentinel", default_port=DEFAULT_SENTINEL_PORT
        )
        path = [segment for segment in parts.path.split("/") if segment]
        if not path or len(path) > 2:
            raise ConfigError(
                "a Sentinel URL names the master set after the hosts: "
                "redis+sentinel://host:port[,host:port]/service_name[/db]"
            )
        service_name = urllib.parse.unquote(path[0])
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        own = {name: query.pop(name)[-1] for name in _SENTINEL_OPTIONS if name in query}
        master_scheme = "rediss" if parts.scheme == "rediss+sentinel" else "redis"
        master_url = urllib.parse.urlunsplit(
            (
                master_scheme,
                f"{userinfo}@master" if userinfo else "master",
                f"/{path[1]}" if len(path) == 2 else "",
                urllib.parse.urlencode(query, doseq=True),
                "",
            )
        )
        try:
            master = dict(parse_url(master_url))
        except ValueError as exc:
            raise ConfigError(f"the Sentinel URL has a bad option: {exc}") from None
        if len(path) == 2 and "db" not in master:
            raise ConfigError(
                "the Sentinel URL's database (after the service name) must be a number"
            )
        master.pop("host", None)
        return cls(sentinels, service_name, master, _sentinel_options(master, own))


def _sentinel_options(master: Mapping[str, Any], own: Mapping[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
    }
    if "sentinel_username" in own:
        options["username"] = own["sentinel_username"]
    if "sentinel_password" in own:
        options["password"] = own["sentinel_password"]
    tls = master.get("connection_class") is SSLConnection
    if "sentinel_tls" in own:
        tls = own["sentinel_tls"].strip().lower() in ("1", "true", "yes", "on")
    if tls:
        # Keyword arguments of redis-py's client (which builds the sentinels' connections),
        # so TLS is `ssl=True`, not a connection class.
        options["ssl"] = True
        options.update({k: v for k, v in master.items() if k.startswith("ssl_")})
    return options


class SentinelMaster(AsyncRedis):
    """A client of the master a Sentinel setup names; closing it also closes the
    connections to the sentinels (redis-py leaves those open)."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            if self.sentinels is not None:
                await self.sentinels.aclose()


def sentinel_for(url: SentinelUrl) -> Sentinel:
    """redis-py's `Sentinel` asking the sentinels of ``url`` (connects on first use)."""
    # redis-py's sentinel module carries no type hints.
    return Sentinel(list(url.sentinels), sentinel_kwargs=url.sentinel_options)  # type: ignore[no-untyped-call]


def master_client(url: str, options: Mapping[str, Any]) -> SentinelMaster:
    """An asyncio client of the current master of ``url``'s service; ``options`` are
    redis-py connection options (timeouts, retry, decoding). A connection asks the
    sentinels for the master when it opens, and drops when that server turns out to
    be a replica (``READONLY``), so the next one finds the new master."""
    parsed = SentinelUrl.parse(url)
    master = dict(parsed.master_options)
    tls = master.pop("connection_class", None) is SSLConnection
    managed = SentinelManagedSSLConnection if tls else SentinelManagedConnection
    master["connection_class"] = hiredis_packing(managed)
    sentinel = sentinel_for(parsed)
    # Options in the URL win, as they do in redis-py's from_url.
    pool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
        parsed.service_name, sentinel, **{**options, **master}
    )
    client = SentinelMaster(connection_pool=pool)
    client.auto_close_connection_pool = True  # as Redis.from_pool: the client owns its pool
    client.sentinels = sentinel
    return client
