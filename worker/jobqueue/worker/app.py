"""The worker app: handlers registered by job type, with per-type options.

::

    app = App()

    @app.handler("email", timeout_s=30, max_attempts=5, backoff=Backoff(base_s=2))
    async def send_email(ctx: JobContext) -> None:
        await deliver(ctx.payload["to"], ctx.payload["template"])

A handler is ``async def`` (run on the event loop) or a plain function (run in a worker
thread, off the loop). It returns normally for success, raises `jobqueue.core.errors.Retry`
to ask for another attempt, `jobqueue.core.errors.Fatal` to dead-letter at once; any
other exception is a failed attempt. What it returns is the job's result
(`jobqueue.worker.results`); ``payload=Model`` types its payload (`jobqueue.worker.payloads`).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis as AsyncRedis

from jobqueue.core.errors import ConfigError
from jobqueue.core.wire import Job
from jobqueue.worker.backoff import Backoff
from jobqueue.worker.payloads import is_model

if TYPE_CHECKING:  # pydantic is imported only by apps that declare payload models
    from pydantic import BaseModel


@dataclass(slots=True)
class JobContext:
    """What a handler receives: the job, where it came from, and the worker's Redis."""

    job: Job
    entry_id: str
    """Stream entry id this delivery came from."""
    redis: AsyncRedis
    """The worker's asyncio Redis client (strings decoded); usable from async handlers."""
    data: Any = None
    """The payload validated by the handler's ``payload`` model (`jobqueue.worker.payloads`);
    None for a handler without one."""

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    @property
    def job_id(self) -> str:
        """The job's id: the same on every attempt and every delivery of this job, so
        the key to make a handler's effects idempotent (README, "Writing a worker app")."""
        return self.job.id

    @property
    def attempt(self) -> int:
        """Which attempt this is, 1 for the first. An attempt that failed because Redis
        was unavailable is run again under the same number."""
        return self.job.attempts + 1


Handler = Callable[[JobContext], Awaitable[object]] | Callable[[JobContext], object]


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """One registered handler and its options (``None`` = the worker's default)."""

    job_type: str
    fn: Handler
    is_async: bool
    timeout_s: float | None = None
    max_attempts: int | None = None
    backoff: Backoff | None = None
    payload: type[BaseModel] | None = None
    """The pydantic model its payloads must match (checked before it runs), or None."""


class App:
    """A set of handlers, one per job type."""

    def __init__(self, name: str = "jobqueue") -> None:
        self.name = name
        self.handlers: dict[str, HandlerSpec] = {}

    def handler(
        self,
        job_type: str,
        *,
        timeout_s: float | None = None,
        max_attempts: int | None = None,
        backoff: Backoff | None = None,
        payload: type[BaseModel] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated function for jobs of ``job_type``; with ``payload`` (a
        pydantic model) a payload is validated before the handler runs, the result in
        ``ctx.data``, and a payload it refuses is dead-lettered (`payloads`)."""
        if payload is not None and not is_model(payload):
            raise ConfigError(f"{job_type}: payload must be a pydantic model class")
        if timeout_s is not None and timeout_s <= 0:
            raise ConfigError(f"{job_type}: timeout_s must be positive")
        if max_attempts is not None and max_attempts < 1:
            raise ConfigError(f"{job_type}: max_attempts must be at least 1")

        def register(fn: Handler) -> Handler:
            if job_type in self.handlers:
                raise ConfigError(f"a handler for job type {job_type!r} is already registered")
            self.handlers[job_type] = HandlerSpec(
                job_type=job_type,
                fn=fn,
                is_async=inspect.iscoroutinefunction(fn),
                timeout_s=timeout_s,
                max_attempts=max_attempts,
                backoff=backoff,
                payload=payload,
            )
            return fn

        return register

    def get(self, job_type: str) -> HandlerSpec | None:
        return self.handlers.get(job_type)

    def payload_models(self) -> dict[str, type[BaseModel] | None]:
        """Each handler's payload model (None: any object), by job type."""
        return {job_type: spec.payload for job_type, spec in self.handlers.items()}


def load_app(ref: str) -> App:
    """The `App` named by ``module:attribute``; a clear ConfigError when it is not one.

    The current directory is importable, as with celery, rq and uvicorn: a console script
    does not put it on ``sys.path``, and ``jobqueue worker myapp:app`` run beside
    ``myapp.py`` must find it.
    """
    module_name, sep, attribute = ref.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"APP_REF must look like 'module:attribute', got {ref!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    if not hasattr(module, attribute):
        raise ConfigError(f"module {module_name!r} has no attribute {attribute!r}")
    app = getattr(module, attribute)
    if not isinstance(app, App):
        raise ConfigError(f"{ref} is not a jobqueue.worker.App (got {type(app).__name__})")
    if not app.handlers:
        raise ConfigError(f"{ref} has no handlers: register one with @{attribute}.handler(TYPE)")
    return app
