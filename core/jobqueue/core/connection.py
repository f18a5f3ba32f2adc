"""Opening Redis connections the same way in every component: one dispatch on the URL.

A URL's scheme picks its `Kind`: how to check the URL, how to open the shared asyncio
client, and how a single connection of our own (the worker's hot connection) finds
its server. ``redis://``, ``rediss://`` and ``unix://`` name one server;
``redis+sentinel://`` and ``rediss+sentinel://`` name a Sentinel-managed master
(`jobqueue.core.sentinel`); ``redis+cluster://`` and ``rediss+cluster://`` a Redis
Cluster (`jobqueue.core.cluster`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_errors
from redis._parsers.base import BaseParser as _BaseParser
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from jobqueue.core import cluster, sentinel
from jobqueue.core.errors import ConfigError
from jobqueue.core.packing import hiredis_packing

HEALTH_CHECK_INTERVAL_S = 15
CONNECT_TIMEOUT_S = 5.0


async def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one connection of our own goes, found anew on each (re)connect."""

    options: dict[str, Any]
    """redis-py connection options: credentials, ``db``, TLS options,
    ``connection_class``; ``host``/``port`` or ``path`` when the URL names one server."""
    locate: Callable[[], Awaitable[tuple[str, int]]] | None = None
    """Asks where the server is now (the sentinels, for the current master; the
    cluster, for the primary of the queue's slot); None when the URL names the server
    itself."""
    close: Callable[[], Awaitable[None]] = _nothing
    """Releases what `locate` holds (connections to the sentinels)."""

    async def current_options(self) -> dict[str, Any]:
        """`options` with the ``host`` and ``port`` to connect to now."""
        if self.locate is None:
            return self.options
        host, port = await self.locate()
        return {**self.options, "host": host, "port": int(port)}


@dataclass(frozen=True, slots=True)
class Kind:
    """What a family of URL schemes needs; each callable takes the URL."""

    check: Callable[[str], None]
    """Raises ConfigError saying what is wrong (never repeating the URL)."""
    client: Callable[[str, dict[str, Any]], AsyncRedis]
    """The shared asyncio client, given redis-py connection options."""
    endpoint: Callable[[str, str | None], Endpoint]
    """Takes the URL and the key whose server the connection is for (a Cluster's
    connection goes to the node that owns that key's slot; other kinds ignore it)."""


def _check_direct(url: str) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
        parse_url(url)
    except ValueError:
        raise ConfigError("the Redis URL has an invalid port or option") from None
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        # redis-py would quietly use database 0: another queue than the one named.
        raise ConfigError(f"the Redis URL's database must be a number (got {database!r})")


def _direct_client(url: str, options: dict[str, Any]) -> AsyncRedis:
    client = AsyncRedis.from_url(url, **options)
    pool = client.connection_pool  # its class follows the URL (TLS, unix socket)
    pool.connection_class = hiredis_packing(pool.connection_class)
    return client


def _direct_endpoint(url: str, key: str | None = None) -> Endpoint:
    return Endpoint(dict(parse_url(url)))


def _sentinel_endpoint(url: str, key: str | None = None) -> Endpoint:
    parsed = sentinel.SentinelUrl.parse(url)
    sentinels = sentinel.sentinel_for(parsed)

    async def locate() -> tuple[str, int]:
        host, port = await sentinels.discover_master(parsed.service_name)
        return str(host), int(port)

    return Endpoint(parsed.master_options, locate, sentinels.aclose)


def _check_sentinel(url: str) -> None:
    sentinel.SentinelUrl.parse(url)


def _cluster_endpoint(url: str, key: str | None = None) -> Endpoint:
    parsed = cluster.ClusterUrl.parse(url)

    async def locate() -> tuple[str, int]:
        return await parsed.slot_owner(key or "")

    return Endpoint(parsed.node_options, locate)


def _check_cluster(url: str) -> None:
    cluster.ClusterUrl.parse(url)


def _cluster_client(url: str, options: dict[str, Any]) -> AsyncRedis:
    return cluster.ClusterUrl.parse(url).shared_client(options)


DIRECT = Kind(_check_direct, _direct_client, _direct_endpoint)
SENTINEL = Kind(_check_sentinel, sentinel.master_client, _sentinel_endpoint)
CLUSTER = Kind(_check_cluster, _cluster_client, _cluster_endpoint)
KINDS: dict[str, Kind] = {
    "redis": DIRECT,
    "rediss": DIRECT,
    "unix": DIRECT,
    "redis+sentinel": SENTINEL,
    "rediss+sentinel": SENTINEL,
    "redis+cluster": CLUSTER,
    "rediss+cluster": CLUSTER,
}


def kind_of(url: str) -> Kind:
    """The `Kind` of ``url``'s scheme; ConfigError naming the schemes known."""
    scheme = urllib.parse.urlsplit(url).scheme
    kind = KINDS.get(scheme)
    if kind is None:
        *most, last = [f"{name}://" for name in KINDS]
        got = f"{scheme}://" if scheme else "no scheme"
        raise ConfigError(f"the Redis URL must start with {', '.join(most)} or {last} (got {got})")
    return kind


def check_url(url: str) -> str:
    """``url`` when it can be used; else ConfigError saying why."""
    kind_of(url).check(url)
    return url


class NoReplicasError(redis_errors.ResponseError):
    """``-NOREPLICAS``: a master with ``min-replicas-to-write`` set has too few replicas
    in sync to take a write (a replica lost, or one still syncing after a failover)."""


# redis-py answers an error code it does not know with a bare ResponseError, which reads
# as a command's own fault. Its parsers look codes up in this table (every parser, every
# connection of the process), so a code Redis gives when it is unavailable gets a class of
# its own here and `REDIS_UNAVAILABLE` can name it. MASTERDOWN has redis-py's own class.
_BaseParser.EXCEPTION_CLASSES.setdefault("NOREPLICAS", NoReplicasError)

REDIS_UNAVAILABLE = (
    redis_errors.ConnectionError,  # includes BusyLoadingError (Redis still loading) and
    # the sentinels knowing no master (MasterNotFoundError)
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,  # a replica, or a failover in progress
    redis_errors.OutOfMemoryError,
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,  # a replica cut off from its master, stale reads off
    NoReplicasError,
    redis_errors.ClusterError,  # redirections past the limit (a long slot migration), down
)
"""Redis unreachable, or up but refusing writes: no command's own fault, so every
command of a round trip shares it and a caller may retry later."""
REDIS_REFUSED = (
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    redis_errors.OutOfMemoryError,
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,
    NoReplicasError,
    redis_errors.ClusterError,
)
"""Those of `REDIS_UNAVAILABLE` that Redis answers before a script writes anything;
the others (a dropped connection, a timeout) leave it unknown whether it ran."""


def async_redis(url: str, *, socket_timeout_s: float | None = 30.0) -> AsyncRedis:
    """An asyncio Redis client for ``url`` (any scheme of `KINDS`), strings decoded.

    redis-py never repeats a command on its own here: a script repeated after a dropped
    connection may run twice, so the callers that can repeat a call safely do it
    themselves (the client's enqueue, by job id) and the others treat the error as Redis
    being unavailable. The next command reconnects; behind Sentinel each reconnect asks
    the sentinels for the current master. The socket timeout must
    exceed any ``BLOCK`` a caller uses, or blocking reads would time out as errors.
    Bytes that are not UTF-8 (a foreign producer's) decode to lone surrogates and encode
    back to the same bytes, so such an entry can be read and dead-lettered intact
    instead of failing every read that meets it.
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "encoding_errors": "surrogateescape",
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        # An explicit no-retry: redis-py's asyncio default repeats a command 3 times.
        "retry": Retry(NoBackoff(), retries=0),
    }
    return kind_of(url).client(url, options)


async def drop_idle_connections(redis: AsyncRedis) -> None:
    """Close the idle pooled connections of a shared client (a Cluster client's on
    every node): after an outage they may be dead ends the server closed."""
    if isinstance(redis, RedisCluster):
        for node in redis.get_nodes():
            await node.disconnect_free_connections()
    else:
        await redis.connection_pool.disconnect(inuse_connections=False)


def endpoint(url: str, key: str | None = None) -> Endpoint:
    """Where a single connection of our own to ``url`` goes (see `Endpoint`); in a
    Cluster, to the primary that owns ``key``'s slot."""
    return kind_of(url).endpoint(url, key)
