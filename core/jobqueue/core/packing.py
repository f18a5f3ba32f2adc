"""Packing commands with hiredis, in C, on every asyncio connection.

redis-py's asyncio connections pack each command in Python, encoding one argument at a
time (~1 µs an argument here), where its synchronous ones use hiredis. For a command of
a few arguments that hardly shows; for a script call carrying every field of a hundred
jobs as plain arguments (`jobqueue.core.scripts.ENQUEUE`) it was most of the client's
work. `hiredis_packing` gives a connection class hiredis's packer, and falls back to
redis-py's own for anything hiredis does not take as redis-py would: a command name
with a space in it (``"CLIENT KILL"``), and values hiredis refuses (None, bool, a
bytearray) or cannot encode (text with lone surrogates: bytes that were not UTF-8,
which redis-py writes back as they came, `jobqueue.core.connection`).
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import hiredis
from redis.asyncio.connection import AbstractConnection

C = TypeVar("C", bound=type[AbstractConnection])
_made: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def hiredis_packing(connection_class: C) -> C:
    """``connection_class`` packing its commands with hiredis (same bytes on the wire);
    one subclass per class, made once."""
    made = _made.get(connection_class)
    if made is None:
        made = _made[connection_class] = _subclass(connection_class)
    return cast(C, made)


def _subclass(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:

    class HiredisPacking(connection_class):  # type: ignore[valid-type,misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            first = args[0]
            if type(first) is str and " " not in first:
                try:
                    return [hiredis.pack_command(args)]
                except (TypeError, UnicodeEncodeError):
                    pass  # a value hiredis does not take as redis-py does
            packed: list[bytes] = super().pack_command(*args)
            return packed

    HiredisPacking.__name__ = HiredisPacking.__qualname__ = f"Hiredis{connection_class.__name__}"
    return HiredisPacking
