"""Bearer-token authentication, on when tokens are configured.

Tokens come from ``JOBQUEUE_AUTH_TOKENS`` and/or a mounted file
(``JOBQUEUE_AUTH_TOKENS_FILE``, e.g. a Kubernetes Secret). The file is re-read when its
modification time changes (checked at most every `RELOAD_INTERVAL_S`), so a rotated
Secret takes effect without a restart; a file that turns unreadable or empty keeps the
last good tokens rather than locking everyone out or letting everyone in.

Every token is compared in constant time (``hmac.compare_digest``, all of them, no
early exit), so response timing tells nothing about a token. Health, readiness, metrics
and the OpenAPI document stay open: probes and scrapers carry no token, and none of them
reveals or changes a job.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from jobqueue.core.errors import ConfigError
from jobqueue.producer.errors import json_error
from jobqueue.producer.settings import read_tokens_file

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
RELOAD_INTERVAL_S = 5.0


class TokenSet:
    """The accepted tokens: fixed ones plus those of a file, re-read when it changes."""

    def __init__(
        self,
        tokens: Sequence[str],
        path: str | None = None,
        *,
        reload_interval_s: float = RELOAD_INTERVAL_S,
    ) -> None:
        self._fixed = [token.encode() for token in tokens]
        self._path = path
        self._reload_interval_s = reload_interval_s
        self._from_file: list[bytes] = []
        self._mtime_ns: int | None = None
        self._checked_at = float("-inf")
        self._reload()
        if not self._fixed and not self._from_file:
            raise ValueError("TokenSet needs at least one token")

    def current(self) -> list[bytes]:
        now = time.monotonic()
        if self._path is not None and now - self._checked_at >= self._reload_interval_s:
            self._reload()
        return self._fixed + self._from_file

    def _reload(self) -> None:
        if self._path is None:
            return
        self._checked_at = time.monotonic()
        try:
            mtime_ns = os.stat(self._path).st_mtime_ns
            if mtime_ns == self._mtime_ns:
                return
            tokens = read_tokens_file(self._path)
        except (OSError, ConfigError) as exc:
            if self._mtime_ns is None and not self._fixed:
                raise ConfigError(f"auth tokens file {self._path!r}: {exc}") from None
            log.warning("keeping the previous auth tokens: %s", exc)
            return
        self._from_file = [token.encode() for token in tokens]
        self._mtime_ns = mtime_ns


def auth_middleware(tokens: TokenSet) -> Middleware:
    """A middleware answering 401 to any request on a closed path without a valid token."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        if request.path in OPEN_PATHS or authorised(header, tokens.current()):
            return await handler(request)
        return json_error(
            401,
            "Unauthorized",
            "send 'Authorization: Bearer <token>' with a configured token",
            headers={"WWW-Authenticate": 'Bearer realm="jobqueue"'},
        )

    return middleware


def authorised(header: str | None, accepted: Sequence[bytes]) -> bool:
    """Whether an ``Authorization`` header carries one of the ``accepted`` bearer tokens."""
    scheme, _, token = (header or "").partition(" ")
    # Bytes that are not UTF-8 arrive as lone surrogates: encoded back as they came,
    # they simply match no token.
    given = token.strip().encode("utf-8", "surrogateescape")
    if scheme.lower() != "bearer" or not given:
        return False
    found = False
    for candidate in accepted:
        found |= hmac.compare_digest(given, candidate)
    return found
