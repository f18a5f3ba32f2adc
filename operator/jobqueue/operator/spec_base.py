"""The base of every JobQueue spec model, and cross-field rules as CEL for the API server."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, JsonValue
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    """Base of every spec model: camelCase aliases, unknown keys rejected, docstrings kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )


def cel(*rules: tuple[str, str]) -> ConfigDict:
    """Cross-field ``(rule, message)`` pairs of a model as CEL for the API server; the
    model's validators enforce the same in Python (keep both in step)."""
    validations: list[JsonValue] = [{"rule": rule, "message": msg} for rule, msg in rules]
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": validations})
