"""``/dead``: list dead letters page by page, replay one onto the stream, delete one."""

from __future__ import annotations

import re

from aiohttp import web

from jobqueue.core.client import AmbiguousDeadLetter, DeadLetter
from jobqueue.core.wire import shown
from jobqueue.producer.context import CLIENT
from jobqueue.producer.errors import json_error
from jobqueue.producer.models import DeadLetterOut, DeadPageOut, DeletedOut, ReplayOut
from jobqueue.producer.routes_jobs import json_response

routes = web.RouteTableDef()
DEFAULT_PAGE = 50
MAX_PAGE = 500
ENTRY_ID_PATTERN = "[0-9]{1,19}-[0-9]{1,19}"
LIMIT = re.compile("[0-9]{1,6}")


def _out(dead: DeadLetter) -> DeadLetterOut:
    """A dead letter keeps the bytes of the entry that failed, UTF-8 or not (a malformed
    entry is dead-lettered as it was): shown here with ``\\xNN`` for the bytes that are
    not, since JSON cannot hold them (a page with one such letter was a 500)."""
    return DeadLetterOut(
        id=dead.entry_id,
        jobId=shown(dead.job_id),
        type=shown(dead.type),
        reason=shown(dead.reason),
        failedAt=shown(dead.failed_at),
        attempts=shown(dead.attempts),
        fields={shown(name): shown(value) for name, value in dead.fields.items()},
    )


@routes.get("/dead")
async def list_dead(request: web.Request) -> web.Response:
    """Dead letters oldest first; ``limit`` (1..500, default 50) and ``after`` (an id)."""
    unknown = sorted(set(request.query) - {"limit", "after"})
    if unknown:
        return json_error(400, "Invalid query", f"unknown parameters {unknown}")
    text = request.query.get("limit", str(DEFAULT_PAGE))
    if not LIMIT.fullmatch(text) or not 1 <= int(text) <= MAX_PAGE:
        return json_error(400, "Invalid query", f"'limit' must be an integer 1..{MAX_PAGE}")
    after = request.query.get("after")
    try:
        page = await request.app[CLIENT].dead_letters(after=after, limit=int(text))
    except ValueError as exc:
        return json_error(400, "Invalid query", str(exc))
    return json_response(DeadPageOut(items=[_out(d) for d in page.items], next=page.next_after))


@routes.post(f"/dead/{{entry_id:{ENTRY_ID_PATTERN}}}/replay")
async def replay_dead(request: web.Request) -> web.Response:
    """Put a dead letter back on the stream, attempts reset, the dead entry removed."""
    entry_id = request.match_info["entry_id"]
    try:
        replayed = await request.app[CLIENT].replay(entry_id, job_id=request.query.get("jobId"))
    except AmbiguousDeadLetter as exc:
        return json_error(409, "Ambiguous dead letter", f"{exc} (?jobId=)")
    if replayed is None or replayed.entry_id is None:
        return json_error(404, "Dead letter not found", f"no dead letter {entry_id!r}")
    # the id as the dead letter had it: bytes that are not UTF-8 shown as \\xNN (see _out)
    return json_response(ReplayOut(jobId=shown(replayed.job_id), streamEntryId=replayed.entry_id))


@routes.delete(f"/dead/{{entry_id:{ENTRY_ID_PATTERN}}}")
async def delete_dead(request: web.Request) -> web.Response:
    """Delete one dead letter for good."""
    entry_id = request.match_info["entry_id"]
    try:
        deleted = await request.app[CLIENT].delete_dead(entry_id, job_id=request.query.get("jobId"))
    except AmbiguousDeadLetter as exc:
        return json_error(409, "Ambiguous dead letter", f"{exc} (?jobId=)")
    if not deleted:
        return json_error(404, "Dead letter not found", f"no dead letter {entry_id!r}")
    return json_response(DeletedOut(id=entry_id))
