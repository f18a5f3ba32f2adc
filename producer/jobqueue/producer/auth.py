"""Bearer-token authentication, on when tokens are configured.

Every configured token is compared in constant time (``hmac.compare_digest``, all of
them, no early exit), so response timing tells nothing about a token. Health, readiness,
metrics and the OpenAPI document stay open: probes and scrapers carry no token, and
none of them reveals or changes a job.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from jobqueue.producer.errors import json_error

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})


def auth_middleware(tokens: Sequence[str]) -> Middleware:
    """A middleware answering 401 to any request on a closed path without a valid token."""
    if not tokens:
        raise ValueError("auth_middleware needs at least one token")
    accepted = [token.encode() for token in tokens]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or authorised(request.headers.get("Authorization"), accepted):
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
    given = token.strip().encode()
    if scheme.lower() != "bearer" or not given:
        return False
    found = False
    for candidate in accepted:
        found |= hmac.compare_digest(given, candidate)
    return found
