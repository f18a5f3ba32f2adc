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
demoted to a replica in a failover) drops the connection like a lost one.

Failures are redis-py's exception types, so the worker's supervision treats them
alike: a refused or dropped connection is ``ConnectionError``, no reply in time is
``TimeoutError`` (the connection is dropped, since later replies could no longer be
matched to their requests), an error reply is a ``ResponseError`` returned in place of
that command's reply. The next call after a failure connects again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, cast

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import (
    BusyLoadingError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobqueue.core.connection import endpoint

CONNECT_TIMEOUT_S = 5.0

Arg = str | bytes | int | float
Command = tuple[Arg, ...]

# Error replies that the worker treats differently from a plain ResponseError.
_ERROR_TYPES: dict[str, type[Exception]] = {
    "LOADING": BusyLoadingError,
    "NOSCRIPT": NoScriptError,
    "OOM": OutOfMemoryError,
    "READONLY": ReadOnlyError,
    "NOPERM": NoPermissionError,
}


def _error(reply: hiredis.ReplyError) -> Exception:
    message = str(reply)
    return _ERROR_TYPES.get(message.split(" ", 1)[0], ResponseError)(message)


class _Request:
    __slots__ = ("expected", "future", "replies")

    def __init__(self, expected: int, future: asyncio.Future[list[Any]]) -> None:
        self.expected = expected
        self.replies: list[Any] = []
        self.future = future


class _RespProtocol(asyncio.Protocol):
    """Matches replies, in order, to the requests waiting for them."""

    def __init__(self) -> None:
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
                reply = _error(reply)
                if isinstance(reply, ReadOnlyError):
                    # A replica now (failover): no write here can succeed; the next
                    # connect finds the master the sentinels name.
                    self.fail(RedisConnectionError(f"Redis is a replica now: {reply}"))
                    return
            request.replies.append(reply)
            if len(request.replies) == request.expected:
                waiting.popleft()
                if not request.future.done():  # its caller may have given up
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

    def __init__(self, url: str, *, name: str | None = None) -> None:
        self.endpoint = endpoint(url)
        self.options: dict[str, Any] = self.endpoint.options
        self.name = name
        self._protocol: _RespProtocol | None = None
        self._connecting: asyncio.Lock | None = None

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
        protocol.waiting.append(_Request(len(commands), future))
        # hiredis's stub types pack_command's argument as a 1-tuple; any length works.
        packed = [hiredis.pack_command(c) for c in commands]  # type: ignore[arg-type]
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

    async def _open(self) -> _RespProtocol:
        loop = asyncio.get_running_loop()
        options = await self.endpoint.current_options()
        cls = options.get("connection_class")
        if cls is UnixDomainSocketConnection:
            _, protocol = await loop.create_unix_connection(_RespProtocol, options["path"])
        else:
            host, port = options.get("host", "localhost"), int(options.get("port", 6379))
            tls = _tls_context(options) if cls is SSLConnection else None
            _, protocol = await loop.create_connection(_RespProtocol, host, port, ssl=tls)
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
