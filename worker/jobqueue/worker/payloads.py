"""Typed payloads: a handler's pydantic model, checked before the handler runs, and the
job types file (`JOBQUEUE_JOB_TYPES_FILE`) made from an app's models.

::

    class Email(BaseModel):
        to: EmailStr
        template: str

    @app.handler("email", payload=Email)
    async def email(ctx: JobContext) -> None:
        await send(ctx.data.to, ctx.data.template)   # ctx.data: the validated Email

A payload the model refuses is dead-lettered at once (reason ``invalid_payload``, the
validation errors in the dead letter): running it again would fail the same way.
``jobqueue job-types APP_REF`` prints ``{type: JSON Schema}`` for every handler (``null``
for handlers without a model: any object), the format the producer reads, so the HTTP
API refuses what the workers would refuse before it is enqueued.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # imported when used: a worker without models never loads pydantic
    from pydantic import BaseModel

MAX_REASON_CHARS = 400


def parse_payload(model: type[BaseModel], payload: dict[str, Any]) -> BaseModel | str:
    """``payload`` validated by ``model``, or the reason it is refused (one line)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        issues = []
        for error in exc.errors(include_url=False):
            path = ".".join(str(part) for part in error["loc"]) or "payload"
            issues.append(f"{path}: {error['msg']}")
        return f"payload refused by {model.__name__}: {'; '.join(issues)}"[:MAX_REASON_CHARS]


def is_model(value: object) -> bool:
    """Whether ``value`` is a pydantic model class (without importing pydantic when no
    model was declared: the app that declares one has imported it)."""
    if not isinstance(value, type):
        return False
    from pydantic import BaseModel

    return issubclass(value, BaseModel)


def job_types_document(models: dict[str, type[BaseModel] | None]) -> bytes:
    """The job types file for these handlers: JSON ``{type: schema or null}``, sorted."""
    schemas = {
        job_type: None if model is None else model.model_json_schema()
        for job_type, model in sorted(models.items())
    }
    return orjson.dumps(schemas, option=orjson.OPT_INDENT_2) + b"\n"
