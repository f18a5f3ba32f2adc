"""Replicated enqueue: a job counts as accepted once enough replicas hold it (``WAIT``).

Redis replicates asynchronously: a primary answers a write before any replica has it,
so a primary lost right after an enqueue (a failover) can take the job with it. With
``enqueue_min_replicas`` set, the enqueue script and ``WAIT min_replicas timeout_ms``
go out together on one connection (``WAIT`` counts the replicas that acknowledged
*that connection's* writes), and the enqueue returns only when that many replicas
acknowledged. Fewer in time, or the connection lost on the way, raises
`EnqueueUnconfirmed` with the job ids: the outcome is unknown, never reported as a
success. What this does and does not guarantee: docs/internals.md.

On a Redis Cluster the same commands go, in one write, on one connection of the primary
that owns the calls' slot (every key of a call, and every call of one enqueue, are one
partition's: one slot). Only answers that prove nothing was written are followed by
another attempt: the node unreachable before anything was sent, MOVED (the slot has
another owner: a failover or a migration done), ASK/TRYAGAIN/CLUSTERDOWN (a migration
or a failover under way), NOSCRIPT (a restarted node without the script). A write
sent and then a lost connection stays `EnqueueUnconfirmed`: sent again on another
connection, a WAIT would count that connection's writes, not the first one's.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    ConnectionError,
    MovedError,
    NoScriptError,
    ResponseError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)

from jobqueue.core.errors import EnqueueUnconfirmed

CLUSTER_ATTEMPTS = 6
"""Attempts of one replicated enqueue on a cluster while the answers prove nothing was
written (a redirection, the owner unreachable); the caller's own retries come on top."""
NOT_WRITTEN = (AskError, TryAgainError, ClusterDownError, NoScriptError)
"""Answers to a script call (or to its queueing in MULTI) given before it ran: MOVED is
an `AskError` too."""
_LOADED: weakref.WeakKeyDictionary[RedisCluster, set[str]] = weakref.WeakKeyDictionary()
"""The nodes (names) of each cluster client known to have the enqueue script cached."""


async def enqueue_replicated(
    redis: AsyncRedis,
    script: AsyncScript,
    calls: Sequence[tuple[list[str], list[bytes | str]]],
    job_ids: list[str],
    *,
    min_replicas: int,
    timeout_ms: int,
) -> list[Any]:
    """Run the enqueue ``script`` once per (keys, args) of ``calls`` (several: in one
    MULTI/EXEC), then ``WAIT``; the script calls' replies once ``min_replicas`` replicas
    hold the jobs ``job_ids``. On a cluster every call's keys must share one slot."""
    if isinstance(redis, RedisCluster):
        return await _on_cluster(
            redis, script, calls, job_ids, min_replicas=min_replicas, timeout_ms=timeout_ms
        )
    # A plain pipeline with MULTI/EXEC spelled out: redis-py's transactional pipeline
    # would wrap the WAIT into the transaction too, where it cannot wait.
    async with redis.pipeline(transaction=False) as pipe:
        transaction = len(calls) > 1
        if transaction:
            pipe.execute_command("MULTI")
        for keys, args in calls:
            await script(keys=keys, args=args, client=pipe)
        if transaction:
            pipe.execute_command("EXEC")
        pipe.execute_command("WAIT", min_replicas, timeout_ms)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except (ConnectionError, TimeoutError) as exc:
            raise EnqueueUnconfirmed(job_ids, f"connection lost: {exc}") from exc
    return _checked(replies, transaction, job_ids, min_replicas, timeout_ms)


async def _on_cluster(
    cluster: RedisCluster,
    script: AsyncScript,
    calls: Sequence[tuple[list[str], list[bytes | str]]],
    job_ids: list[str],
    *,
    min_replicas: int,
    timeout_ms: int,
) -> list[Any]:
    transaction = len(calls) > 1
    commands: list[tuple[Any, ...]] = [("MULTI",)] if transaction else []
    commands += [("EVALSHA", script.sha, len(keys), *keys, *args) for keys, args in calls]
    if transaction:
        commands.append(("EXEC",))
    commands.append(("WAIT", min_replicas, timeout_ms))
    slot_key = calls[0][0][0]
    last: Exception = ClusterError("no attempt made")
    for attempt in range(CLUSTER_ATTEMPTS):
        if attempt:
            await asyncio.sleep(min(0.05 * 2 ** (attempt - 1), 0.5))
        try:
            await cluster.initialize()  # a no-op unless a refresh of the slot map is due
            node = cluster.get_node_from_key(slot_key)
        except (ConnectionError, TimeoutError, ClusterError, SlotNotCoveredError) as exc:
            last = exc
            continue
        assert node is not None  # a primary is asked for: None only for replicas
        loaded = _LOADED.setdefault(cluster, set())
        # A node not known to have the script gets it first, in the same write: a
        # NOSCRIPT would cost a WAIT too, which blocks up to its timeout when fewer
        # replicas than asked are attached (a primary just promoted).
        load = node.name not in loaded
        sent = [("SCRIPT", "LOAD", script.script), *commands] if load else commands
        replies = await _send(cluster, node, sent, job_ids)
        if isinstance(replies, ConnectionError):
            last = replies
            continue
        if load and not isinstance(replies.pop(0), ResponseError):
            loaded.add(node.name)
        refused = _refusal(replies, transaction)
        if refused is None:
            return _checked(replies, transaction, job_ids, min_replicas, timeout_ms)
        last = refused
        if isinstance(refused, MovedError):
            await cluster.nodes_manager.move_slot(refused)
        elif isinstance(refused, NoScriptError):  # a node restarted: load it next time
            loaded.discard(node.name)
        elif isinstance(refused, ClusterDownError):
            _refresh_later(cluster, node)
    if isinstance(last, ConnectionError):
        raise last
    raise ClusterError(f"enqueue not written after {CLUSTER_ATTEMPTS} attempts: {last}") from last


async def _send(
    cluster: RedisCluster, node: ClusterNode, commands: list[tuple[Any, ...]], job_ids: list[str]
) -> list[Any] | ConnectionError:
    """The replies to ``commands``, written at once on one connection of ``node``. A
    ConnectionError is returned when nothing could be sent (the node unreachable);
    `EnqueueUnconfirmed` is raised when the connection broke after the write."""
    connection = node.acquire_connection()
    try:
        try:
            await node.disconnect_if_needed(connection)
            await connection.connect()  # type: ignore[no-untyped-call]
        except (ConnectionError, TimeoutError, OSError) as exc:
            # Nothing sent: the owner is down (a failover may be under way).
            _refresh_later(cluster, node)
            return ConnectionError(f"{node.name} unreachable, nothing written: {exc}")
        try:
            await connection.send_packed_command(connection.pack_commands(commands))
            replies = [await _reply(connection) for _ in commands]
            if isinstance(replies[-1], ResponseError):
                # UNBLOCKED: the primary turned replica while WAIT blocked (a
                # failover); Redis closes the connection after that reply.
                _refresh_later(cluster, node)
                await connection.disconnect()
        except (ConnectionError, TimeoutError) as exc:
            _refresh_later(cluster, node)
            raise EnqueueUnconfirmed(job_ids, f"connection lost: {exc}") from exc
    finally:
        node.release(connection)
    return replies


async def _reply(connection: Connection) -> Any:
    """The next reply; an error reply as its exception, read and returned, not raised."""
    try:
        return await connection.read_response()
    except ResponseError as exc:
        return exc


def _refusal(replies: list[Any], transaction: bool) -> Exception | None:
    """Why the script calls were not run (`NOT_WRITTEN`), or None when they were: in
    MULTI, a call refused when queued aborts EXEC (nothing of it ran); NOSCRIPT comes
    inside EXEC's reply, for every call alike (one script)."""
    calls = replies[1:-2] if transaction else replies[:-1]
    if transaction and isinstance(replies[-2], list):
        calls = replies[-2]
    for reply in calls:
        if isinstance(reply, NOT_WRITTEN):
            return reply
    return None


def _checked(
    replies: list[Any], transaction: bool, job_ids: list[str], min_replicas: int, timeout_ms: int
) -> list[Any]:
    """The script calls' replies, once ``WAIT`` counted enough replicas (one Redis and
    a cluster node alike)."""
    # In order: a call refused when queued (OOM...) comes before the EXECABORT it caused.
    for reply in replies[:-1]:
        if isinstance(reply, Exception):
            raise reply
    calls = replies[-2] if transaction else replies[:-1]
    for reply in calls:
        if isinstance(reply, Exception):  # the script's own error
            raise reply
    if isinstance(replies[-1], Exception):  # the script ran; WAIT did not count (UNBLOCKED)
        raise EnqueueUnconfirmed(job_ids, f"WAIT answered {replies[-1]}") from replies[-1]
    acknowledged = int(replies[-1])
    if acknowledged < min_replicas:
        raise EnqueueUnconfirmed(
            job_ids,
            f"{acknowledged} of {min_replicas} replicas acknowledged within {timeout_ms} ms",
        )
    return list(calls)


def _refresh_later(cluster: RedisCluster, node: ClusterNode) -> None:
    """Have the next `RedisCluster.initialize` ask for the slot map again, the failed
    node asked last (as redis-py does after a connection error of its own)."""
    cluster.nodes_manager.move_node_to_end_of_cached_nodes(node.name)
    cluster._initialize = True
