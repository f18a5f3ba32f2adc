"""An example worker app of your own: two job types, packaged into a worker image.

``greet`` is an async handler that records its result in Redis under the job's id (the
same on every attempt, so a repeat overwrites rather than duplicates); ``checksum`` is a
plain function, run in a thread. A payload that can never succeed is dead-lettered at
once (`Fatal`); a flaky dependency asks for another attempt (`Retry`). README.md beside
this file shows the path from here to a cluster.
"""

from __future__ import annotations

import hashlib
import logging

from jobqueue.core.errors import Fatal, Retry
from jobqueue.worker.app import App, JobContext

app = App("myapp")
log = logging.getLogger("myapp")
GREETINGS = "myapp:greetings"
"""Hash of job id -> greeting, the result of each ``greet`` job."""


@app.handler("greet", timeout_s=10)
async def greet(ctx: JobContext) -> None:
    name = ctx.payload.get("name")
    if not isinstance(name, str) or not name:
        raise Fatal("greet needs a non-empty 'name'")
    if ctx.payload.get("flaky") and ctx.attempt == 1:
        raise Retry("downstream busy", delay_s=0.1)  # e.g. a 503 from a service
    await ctx.redis.hset(GREETINGS, ctx.job_id, f"hello, {name}")


@app.handler("checksum", timeout_s=60, max_attempts=3)
def checksum(ctx: JobContext) -> None:
    text = ctx.payload.get("text")
    if not isinstance(text, str):
        raise Fatal("checksum needs a string 'text'")
    log.info("job %s: sha256 %s", ctx.job_id, hashlib.sha256(text.encode()).hexdigest())
