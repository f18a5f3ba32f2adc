"""A handler's return value as the JSON text stored with its job's status record.

``None`` stores nothing (the success flush carries no extra bytes). Anything else is
serialised with orjson; a value that is not JSON-serialisable, or whose text is longer
than ``result_max_bytes``, is not stored: the job still succeeds, and its record's
``result_error`` field says why (the handler's work is done; failing the job over its
return value would run it again for nothing).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from jobqueue.core.wire import Job

log = logging.getLogger("jobqueue.worker")

Stored = tuple[str, bytes]
"""(status field, value): ``("result", json)`` or ``("result_error", reason)``."""


def encode_result(job: Job, value: Any, max_bytes: int) -> Stored | None:
    """What to store for ``value`` returned by ``job``'s handler; None for nothing."""
    if value is None:
        return None
    try:
        text = orjson.dumps(value)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        reason = f"result not stored: not JSON-serialisable ({exc})"
        log.warning("job %s (%s) succeeded; %s", job.id, job.type, reason)
        return ("result_error", reason.encode())
    if len(text) > max_bytes:
        reason = f"result not stored: too large ({len(text)} bytes > {max_bytes})"
        log.warning("job %s (%s) succeeded; %s", job.id, job.type, reason)
        return ("result_error", reason.encode())
    return ("result", text)
