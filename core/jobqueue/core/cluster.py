"""Redis Cluster: the ``redis+cluster://`` URL, the shared client, and where a slot lives.

::

    redis+cluster://[user:password@]host:port[,host:port...][/0][?options]
    rediss+cluster://...     TLS to every node

The hosts are seed nodes: any reachable one tells the client the rest of the cluster
(its slot map). A cluster has database 0 only. The query options are redis-py's for
every node connection (``ssl_ca_certs``, ``ssl_cert_reqs``...). Every key of a queue
hashes to the stream's slot (`jobqueue.core.keys`), so each script and pipeline of one
queue goes to one node: the shared client (redis-py's `RedisCluster`) routes them by
slot and follows MOVED/ASK itself; the worker's own connection asks `slot_owner` on
every (re)connect.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from jobqueue.core.errors import ConfigError
from jobqueue.core.hostlist import parse_hosts
from jobqueue.core.packing import hiredis_packing

SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_PORT = 6379
ASK_TIMEOUT_S = 2.0
"""How long one seed node may take to answer CLUSTER SLOTS, seconds: a dead one must not
hold up asking the next."""


@dataclass(frozen=True, slots=True)
class ClusterUrl:
    """A parsed ``redis+cluster://`` URL."""

    seeds: tuple[tuple[str, int], ...]
    node_options: dict[str, Any] = field(hash=False)
    """redis-py connection options of every node: credentials, TLS options,
    ``connection_class`` (`SSLConnection` for TLS); no host, port or db."""

    @property
    def tls(self) -> bool:
        return self.node_options.get("connection_class") is SSLConnection

    @classmethod
    def parse(cls, url: str) -> ClusterUrl:
        """The parts of ``url``; ConfigError saying what is wrong (never repeating the
        URL, which may hold a password)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ConfigError(f"a Cluster URL starts with {' or '.join(SCHEMES)}://")
        userinfo, _, hostlist = parts.netloc.rpartition("@")
        seeds = parse_hosts(hostlist, url_kind="Cluster", member="node", default_port=DEFAULT_PORT)
        if parts.path.strip("/") not in ("", "0"):
            raise ConfigError("a Redis Cluster has database 0 only: no other in a Cluster URL")
        node_scheme = "rediss" if parts.scheme == "rediss+cluster" else "redis"
        host, port = seeds[0]
        netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
        try:
            options = dict(
                parse_url(urllib.parse.urlunsplit((node_scheme, netloc, "", parts.query, "")))
            )
        except ValueError:
            raise ConfigError("the Cluster URL has an invalid option") from None
        for name in ("host", "port", "db", "path"):
            options.pop(name, None)
        return cls(seeds, options)

    def shared_client(self, options: dict[str, Any]) -> AsyncRedis:
        """redis-py's asyncio cluster client. It is not a subclass of `Redis` but
        speaks every command a queue uses alike (each routed to its key's slot), so
        callers keep one type."""
        node_options = {k: v for k, v in self.node_options.items() if k != "connection_class"}
        client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self.seeds],
            ssl=self.tls,
            **node_options,
            **options,
        )
        # The nodes it finds get their connections of this class (TLS or not).
        kwargs = client.nodes_manager.connection_kwargs
        kwargs["connection_class"] = hiredis_packing(kwargs["connection_class"])
        return cast(AsyncRedis, client)

    async def slot_owner(self, key: str) -> tuple[str, int]:
        """The primary that serves ``key``'s slot now, asked of the seeds in turn."""
        slot, failures = key_slot(key.encode()), list[str]()
        for host, port in self.seeds:
            node = AsyncRedis(
                host=host,
                port=port,
                socket_timeout=ASK_TIMEOUT_S,
                socket_connect_timeout=ASK_TIMEOUT_S,
                **self.node_options,
            )
            try:
                ranges = await node.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
            except (RedisError, OSError) as exc:
                failures.append(f"{host}:{port}: {exc}")
                continue
            finally:
                await node.aclose()
            for first, last, primary, *_ in ranges:
                if int(first) <= slot <= int(last):
                    owner_host = (
                        primary[0].decode() if isinstance(primary[0], bytes) else primary[0]
                    )
                    return owner_host or host, int(primary[1])
            failures.append(f"{host}:{port}: slot {slot} is not served")
        raise RedisConnectionError(
            f"no seed node named the owner of slot {slot}: {'; '.join(failures)}"
        )
