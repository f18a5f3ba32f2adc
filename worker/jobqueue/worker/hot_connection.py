"""The worker's hot path to Redis: one pipelined connection of its own.

Every batch of jobs costs one read and one acknowledgement flush. Through redis-py's
asyncio client such a round trip costs the worker 150-450 µs of CPU (connection pool,
retry wrapper, per-command parsing layers, ~8 event-loop turns), which at 64 jobs a
batch is a third of all it spends per job. This connection is the least that still
behaves: commands are packed by hiredis and written at once, replies are parsed by
hiredis as they arrive and handed to the waiting caller in order, and several requests
may be on the wire at once (the reader sends its next read before it runs the batch it
just got, so Redis works while the jobs run).

It speaks RESP2 to any URL `jobqueue.core.connection` accepts (``redis://``,
``rediss://`` with the same TLS query options as redis-py, ``unix://``, and behind
Sentinel ``redis+sentinel://``), with AUTH and SELECT from the URL. Each connect asks
`jobqueue.core.connection.Endpoint` where to go, so behind Sentinel every reconnect
goes to the master the sentinels name then; a ``READONLY`` reply (the server was
demoted to a replica in a failover) drops the connection like a lost one. In a Redis
Cluster it goes to the primary of the queue's slot, found on each connect; ``MOVED`` and
``CLUSTERDOWN`` drop it too; ``ASK`` (a migrating slot) is followed for that command.

Failures are redis-py's exception types, so the worker's supervision treats them
alike: a refused or dropped connection is ``ConnectionError``, no reply in time is
``TimeoutError`` (the connection is dropped, since later replies could no longer be
matched to their requests), an error reply is a ``ResponseError`` returned in place of
that command's reply. The next call after a failure connects again.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import (
    BusyLoadingError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobqueue.core.connection import Endpoint, endpoint

CONNECT_TIMEOUT_S = 5.0
ASK_REPLY_TIMEOUT_S = 30.0
"""At most for a command sent again after ``ASK`` (the caller's own wait may be less)."""
_RECONNECT_REPLIES = ("READONLY", "MOVED", "CLUSTERDOWN")
"""Nothing more can succeed here (a replica now, or the slot is served elsewhere)."""

Arg = str | bytes | int | float
Command = tuple[Arg, ...] | bytes
"""A command's arguments, or the bytes `pack` made of them (a command built ahead of its
send is packed ahead too)."""


def pack(command: tuple[Arg, ...]) -> bytes:
    """``command`` as Redis reads it (RESP), to `send` later."""
    # hiredis's stub types pack_command's argument as a 1-tuple; any length works.
    packed: bytes = hiredis.pack_command(command)  # type: ignore[arg-type]
    return packed


# Error replies that the worker treats differently from a plain ResponseError.
_ERROR_TYPES: dict[str, type[Exception]] = {
    "LOADING": BusyLoadingError,
    "NOSCRIPT": NoScriptError,
    "OOM": OutOfMemoryError,
    "READONLY": ReadOnlyError,
    "NOPERM": NoPermissionError,
    "TRYAGAIN": TryAgainError,  # a multi-key command while its slot is half migrated
}


def _error(reply: hiredis.ReplyError) -> Exception:
    message = str(reply)
    return _ERROR_TYPES.get(message.split(" ", 1)[0], ResponseError)(message)


class _Request:
    __slots__ = ("asks", "commands", "expected", "future", "replies")

    def __init__(self, commands: tuple[Command, ...], future: asyncio.Future[list[Any]]) -> None:
        self.commands = commands
        self.expected = len(commands)
        self.replies: list[Any] = []
        self.future = future
        self.asks: list[tuple[int, str, int]] = []  # (index, host, port) answered ASK


class _RespProtocol(asyncio.Protocol):
    """Matches replies, in order, to the requests waiting for them."""

    def __init__(self, follow_asks: Callable[[_Request], None]) -> None:
        self.follow_asks = follow_asks
        self.transport: asyncio.Transport | None = None
        self.parser = hiredis.Reader(encoding="utf-8", errors="surrogateescape")
        self.waiting: deque[_Request] = deque()
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        try:
            self._hand_out_replies()
        except hiredis.ProtocolError as exc:
            self.fail(RedisConnectionError(f"Redis sent something that is not RESP: {exc}"))

    def _hand_out_replies(self) -> None:
        gets, waiting = self.parser.gets, self.waiting
        while (reply := gets()) is not False:
            if not waiting:
                self.fail(RedisConnectionError("Redis sent a reply nobody asked for"))
                return
            request = waiting[0]
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                if message.startswith(_RECONNECT_REPLIES):
                    # A replica now (failover), or the slot moved: nothing here can
                    # succeed; the next connect finds where to go now.
                    self.fail(RedisConnectionError(f"Redis answered {message}"))
                    return
                if message.startswith("ASK "):
                    _, _, address = message.split(" ", 2)
                    host, _, port = address.rpartition(":")
                    request.asks.append((len(request.replies), host, int(port)))
                reply = _error(reply)
            request.replies.append(reply)
            if len(request.replies) == request.expected:
                waiting.popleft()
                if request.asks:
                    self.follow_asks(request)
                elif not request.future.done():  # its caller may have given up
                    request.future.set_result(request.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(f"connection to Redis lost: {exc or 'closed by server'}")
        self._fail_waiting(self.lost)

    def fail(self, exc: Exception) -> None:
        """Drop the connection: replies still due could not be matched any more."""
        self.lost = self.lost or exc
        if self.transport is not None:
            self.transport.abort()
        self._fail_waiting(exc)

    def _fail_waiting(self, exc: Exception) -> None:
        while self.waiting:
            future = self.waiting.popleft().future
            if not future.done():
                future.set_exception(exc)


class HotConnection:
    """A pipelined connection to the Redis at ``url``; connects on first use."""

    def __init__(self, url: str, *, name: str | None = None, key: str | None = None) -> None:
        """``key``: the queue's stream, whose slot's primary a Cluster URL leads to."""
        self._setup(endpoint(url, key), name)

    def _setup(self, where: Endpoint, name: str | None) -> None:
        self.endpoint = where
        self.options: dict[str, Any] = where.options
        self.name = name
        self._protocol: _RespProtocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._asks: set[asyncio.Task[None]] = set()

    def send(self, *commands: Command) -> asyncio.Future[list[Any]]:
        """Write ``commands`` at once; the future gives their replies, in order.

        Raises ``ConnectionError`` if not connected (see `connect`). Error replies are
        ``ResponseError`` values in the list, not raised: a pipeline's other replies
        stay usable.
        """
        protocol = self._protocol
        if protocol is None or protocol.lost is not None or protocol.transport is None:
            raise RedisConnectionError("not connected to Redis")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        protocol.waiting.append(_Request(commands, future))
        packed = [c if type(c) is bytes else pack(c) for c in commands]  # type: ignore[arg-type]
        protocol.transport.write(b"".join(packed))
        return future

    async def call(self, *commands: Command, timeout_s: float) -> list[Any]:
        """`connect` if needed, `send` and wait for the replies at most ``timeout_s``."""
        await self.connect()
        return await self.wait(self.send(*commands), timeout_s)

    async def wait(self, sent: asyncio.Future[list[Any]], timeout_s: float) -> list[Any]:
        """The replies of a `send`; after ``timeout_s`` the connection is dropped and
        ``TimeoutError`` raised."""
        try:
            async with asyncio.timeout(timeout_s):
                return await sent
        except TimeoutError:
            self.close()
            raise RedisTimeoutError(f"no reply from Redis within {timeout_s:g} s") from None

    @property
    def connected(self) -> bool:
        protocol = self._protocol
        return protocol is not None and protocol.lost is None and protocol.transport is not None

    async def connect(self) -> None:
        """Open the connection (AUTH, SELECT, CLIENT SETNAME) unless it is open."""
        if self.connected:
            return
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.connected:
                return
            self.close()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    protocol = await self._open()
                    self._protocol = protocol
                    await self._handshake()
            except TimeoutError:
                self.close()
                raise RedisTimeoutError("timed out connecting to Redis") from None
            except OSError as exc:
                self.close()
                raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc

    def close(self) -> None:
        """Drop the connection; requests still waiting fail with ``ConnectionError``."""
        if self._protocol is not None:
            self._protocol.fail(RedisConnectionError("connection closed"))
            self._protocol = None

    async def aclose(self) -> None:
        """`close`, and release what finding the server holds (sentinel connections)."""
        self.close()
        await self.endpoint.close()

    def _follow_asks(self, request: _Request) -> None:
        task = asyncio.ensure_future(self._ask(request))
        self._asks.add(task)
        task.add_done_callback(self._asks.discard)

    async def _ask(self, request: _Request) -> None:
        """Send each command answered ``ASK`` again, after ``ASKING``, to the node
        named (the key has left the migrating slot); a failure there is a lost
        connection to the caller."""
        try:
            for index, host, port in request.asks:
                there = HotConnection.__new__(HotConnection)
                there._setup(Endpoint({**self.options, "host": host, "port": port}), self.name)
                try:
                    asking, reply = await there.call(
                        ("ASKING",), request.commands[index], timeout_s=ASK_REPLY_TIMEOUT_S
                    )
                finally:
                    there.close()
                if isinstance(asking, Exception):
                    raise asking
                request.replies[index] = reply
        except (RedisError, OSError) as exc:
            if not request.future.done():
                request.future.set_exception(
                    RedisConnectionError(f"following ASK to another node failed: {exc}")
                )
            return
        if not request.future.done():
            request.future.set_result(request.replies)

    async def _open(self) -> _RespProtocol:
        loop = asyncio.get_running_loop()
        options = await self.endpoint.current_options()
        cls = options.get("connection_class")
        protocol_factory = functools.partial(_RespProtocol, self._follow_asks)
        if cls is UnixDomainSocketConnection:
            _, protocol = await loop.create_unix_connection(protocol_factory, options["path"])
        else:
            host, port = options.get("host", "localhost"), int(options.get("port", 6379))
            tls = _tls_context(options) if cls is SSLConnection else None
            _, protocol = await loop.create_connection(protocol_factory, host, port, ssl=tls)
        return protocol

    async def _handshake(self) -> None:
        options, commands = self.options, list[Command]()
        password = options.get("password")
        if password is not None:
            username = options.get("username")
            commands.append(("AUTH", username, password) if username else ("AUTH", password))
        if options.get("db"):
            commands.append(("SELECT", int(options["db"])))
        if self.name:
            commands.append(("CLIENT", "SETNAME", self.name))
        if not commands:
            return
        for reply in await self.send(*commands):
            if isinstance(reply, Exception):
                self.close()
                raise RedisConnectionError(f"Redis refused the connection: {reply}")


def _tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS context redis-py builds from a ``rediss://`` URL's query, so this
    connection and the shared client verify (or not) exactly alike."""
    settings = {name: value for name, value in options.items() if name != "connection_class"}
    return SSLConnection(**settings).ssl_context.get()
