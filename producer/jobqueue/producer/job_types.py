"""Which job types the producer accepts, and a JSON Schema for each one's payload.

The configuration file (``JOBQUEUE_JOB_TYPES_FILE``, YAML or JSON) maps each type to
the JSON Schema of its payload, or to ``null`` to accept any object::

    email:
      type: object
      required: [to, template]
      properties: {to: {type: string}, template: {type: string}}
    cleanup: null

Without a file the four demo types are accepted. A payload that does not match its
schema is rejected with one issue per problem, so malformed work never reaches a worker.

``jsonschema`` (Draft 2020-12) is the authority. It costs ~50 µs per payload, so a schema
that uses only keywords meaning the same in Draft 7 is also compiled with
``fastjsonschema`` (~5 µs): a payload it accepts is accepted at once; anything it
rejects goes to ``jsonschema``, which names every problem (and decides, where the two
read a format differently).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

from jobqueue.core.errors import ConfigError

FastCheck = Callable[[Any], Any]
SAME_IN_DRAFT_7 = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "pattern", "minLength",
        "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "multipleOf", "enum", "const", "format", "minItems", "maxItems", "uniqueItems",
        "minProperties", "maxProperties", "items", "title", "description", "default",
        "examples",
    }
)  # fmt: skip
"""Keywords that validate alike in Draft 7 and Draft 2020-12 (``items`` as a schema)."""
Issue = tuple[str, str]
"""(field path such as ``payload.to``, message)."""

_STRING = {"type": "string", "minLength": 1}
DEMO_JOB_TYPES: dict[str, dict[str, Any] | None] = {
    "email": {
        "type": "object",
        "required": ["to", "template"],
        "properties": {"to": {**_STRING, "format": "email"}, "template": _STRING},
    },
    "report": {
        "type": "object",
        "required": ["report_id"],
        "properties": {"report_id": {"type": ["string", "integer"]}},
    },
    "webhook": {
        "type": "object",
        "required": ["url"],
        "properties": {"url": {"type": "string", "pattern": "^https?://"}},
    },
    "thumbnail": {
        "type": "object",
        "required": ["image_url"],
        "properties": {"image_url": {"type": "string", "pattern": "^https?://"}},
    },
}


class JobTypes:
    """The accepted job types; `issues` checks one job against them."""

    def __init__(self, schemas: Mapping[str, Mapping[str, Any] | None]) -> None:
        if not schemas:
            raise ConfigError("job types: at least one type must be configured")
        self._validators: dict[str, Draft202012Validator | None] = {}
        self._fast: dict[str, FastCheck] = {}
        self.schemas = dict(schemas)
        """Type name -> JSON Schema of its payload (None: any object), as configured."""
        for name, schema in schemas.items():
            self._validators[name] = _validator(name, schema)
            if schema is not None and _same_in_draft_7(schema):
                self._fast[name] = fastjsonschema.compile(dict(schema), use_default=False)

    @classmethod
    def demo(cls) -> JobTypes:
        return cls(DEMO_JOB_TYPES)

    @classmethod
    def from_file(cls, path: str | None) -> JobTypes:
        """The types in ``path`` (YAML or JSON), or the demo types when ``path`` is None."""
        if path is None:
            return cls.demo()
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"job types file {path!r} cannot be read: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"job types file {path!r} must map type names to schemas")
        return cls(loaded)

    @property
    def names(self) -> list[str]:
        return sorted(self._validators)

    def issues(self, job_type: str, payload: Mapping[str, Any], prefix: str = "") -> list[Issue]:
        """Every problem of this job's type and payload; empty when it is acceptable."""
        if job_type not in self._validators:
            known = ", ".join(self.names)
            return [(f"{prefix}type", f"unknown job type {job_type!r}; accepted: {known}")]
        validator = self._validators[job_type]
        if validator is None or self._accepted_fast(job_type, payload):
            return []
        found = []
        for error in sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path)):
            path = "".join(f".{part}" for part in error.absolute_path)
            found.append((f"{prefix}payload{path}", error.message))
        return found

    def _accepted_fast(self, job_type: str, payload: Mapping[str, Any]) -> bool:
        check = self._fast.get(job_type)
        if check is None:
            return False
        try:
            check(payload)
        except fastjsonschema.JsonSchemaException:
            return False
        return True


def _same_in_draft_7(schema: Any) -> bool:
    """Whether ``schema`` (and every subschema) uses only `SAME_IN_DRAFT_7` keywords."""
    if not isinstance(schema, Mapping) or not SAME_IN_DRAFT_7.issuperset(schema):
        return False
    subschemas = list((schema.get("properties") or {}).values())
    for keyword in ("additionalProperties", "items"):
        if keyword in schema and not isinstance(schema[keyword], bool):
            subschemas.append(schema[keyword])
    return all(_same_in_draft_7(sub) for sub in subschemas)


def _validator(name: str, schema: Mapping[str, Any] | None) -> Draft202012Validator | None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"job types: a type name must be a non-empty string, got {name!r}")
    if schema is None:
        return None
    if not isinstance(schema, Mapping):
        raise ConfigError(f"job type {name!r}: the schema must be an object or null")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ConfigError(f"job type {name!r}: invalid JSON Schema: {exc.message}") from None
    return Draft202012Validator(schema, format_checker=FormatChecker())
