"""``jobqueue.worker.demo:app``: the four job types of the reference design.

Each simulates its I/O with a short sleep and checks the payload fields it needs; a
payload without them can never succeed, so it is dead-lettered at once (`Fatal`).

==============  =============================  ================================
type            payload                        simulates
==============  =============================  ================================
``email``       ``to``, ``template``           rendering and sending one mail
``report``      ``report_id``                  building a report (CPU-ish, slower)
``webhook``     ``url``                        one HTTP call to ``url``
``thumbnail``   ``image_url``                  fetching and resizing an image
==============  =============================  ================================
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random

from jobqueue.core.errors import Fatal
from jobqueue.worker.app import App, JobContext
from jobqueue.worker.backoff import Backoff

app = App("jobqueue-demo")
log = logging.getLogger("jobqueue.demo")


def _text(ctx: JobContext, name: str) -> str:
    value = ctx.payload.get(name)
    if not isinstance(value, str) or not value:
        raise Fatal(f"{ctx.job.type} needs a non-empty string in payload field {name!r}")
    return value


@app.handler("email", timeout_s=30, max_attempts=5, backoff=Backoff(base_s=2, cap_s=120))
async def email(ctx: JobContext) -> None:
    to, template = _text(ctx, "to"), _text(ctx, "template")
    if "@" not in to:
        raise Fatal(f"not an email address: {to!r}")
    await asyncio.sleep(random.uniform(0.02, 0.08))
    log.info("email %s: sent template %s to %s", ctx.job.id, template, to)


@app.handler("report", timeout_s=120, max_attempts=3)
def report(ctx: JobContext) -> None:
    """A sync handler: runs in a worker thread, off the event loop."""
    report_id = ctx.payload.get("report_id")
    if report_id is None:
        raise Fatal("report needs payload field 'report_id'")
    digest = hashlib.sha256(str(report_id).encode())
    for _ in range(20_000):
        digest = hashlib.sha256(digest.digest())
    log.info("report %s: built report %s (%s)", ctx.job.id, report_id, digest.hexdigest()[:12])


@app.handler("webhook", timeout_s=10, max_attempts=8, backoff=Backoff(base_s=1, cap_s=300))
async def webhook(ctx: JobContext) -> None:
    url = _text(ctx, "url")
    if not url.startswith(("http://", "https://")):
        raise Fatal(f"not an http(s) URL: {url!r}")
    await asyncio.sleep(random.uniform(0.01, 0.1))
    # A real endpoint fails now and then; retries with backoff absorb it.
    if random.random() < 0.05:
        raise ConnectionError(f"simulated: {url} did not answer")
    log.info("webhook %s: delivered to %s", ctx.job.id, url)


@app.handler("thumbnail", timeout_s=60, max_attempts=4)
async def thumbnail(ctx: JobContext) -> None:
    image_url = _text(ctx, "image_url")
    await asyncio.sleep(random.uniform(0.05, 0.2))
    log.info("thumbnail %s: resized %s", ctx.job.id, image_url)
