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

Without a file nothing of that is imported at start (the producer listens in under half a
second, bench/startup.py): the demo types' checkers are built on their first use. A
configured file is checked in full before the producer listens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobqueue.core.errors import ConfigError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

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

    def __init__(
        self, schemas: Mapping[str, Mapping[str, Any] | None], *, check_now: bool = True
    ) -> None:
        """``check_now=False`` defers checking and compiling each schema to when a job
        needs it: only for schemas known valid (the demo types'), so that start-up imports
        no validation library and an accepted job never imports jsonschema."""
        if not schemas:
            raise ConfigError("job types: at least one type must be configured")
        self._validators: dict[str, Draft202012Validator | None] = {}
        self._fast: dict[str, FastCheck | None] = {}
        self.schemas = dict(schemas)
        """Type name -> JSON Schema of its payload (None: any object), as configured."""
        for name, schema in schemas.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"job types: a type name must be a non-empty string: {name!r}")
            if check_now:
                self._validators[name] = _validator(name, schema)
                self._fast[name] = _fast_check(schema)

    @classmethod
    def demo(cls) -> JobTypes:
        return cls(DEMO_JOB_TYPES, check_now=False)

    @classmethod
    def from_file(cls, path: str | None) -> JobTypes:
        """The types in ``path`` (YAML or JSON), or the demo types when ``path`` is None."""
        if path is None:
            return cls.demo()
        import yaml

        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"job types file {path!r} cannot be read: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"job types file {path!r} must map type names to schemas")
        return cls(loaded)

    @property
    def names(self) -> list[str]:
        return sorted(self.schemas)

    def issues(self, job_type: str, payload: Mapping[str, Any], prefix: str = "") -> list[Issue]:
        """Every problem of this job's type and payload; empty when it is acceptable."""
        if job_type not in self.schemas:
            known = ", ".join(self.names)
            return [(f"{prefix}type", f"unknown job type {job_type!r}; accepted: {known}")]
        if self.schemas[job_type] is None or self._accepted_fast(job_type, payload):
            return []
        if job_type not in self._validators:
            self._validators[job_type] = _validator(job_type, self.schemas[job_type])
        validator = self._validators[job_type]
        assert validator is not None  # only a None schema has no validator
        found = []
        for error in sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path)):
            path = "".join(f".{part}" for part in error.absolute_path)
            found.append((f"{prefix}payload{path}", error.message))
        return found

    def _accepted_fast(self, job_type: str, payload: Mapping[str, Any]) -> bool:
        if job_type not in self._fast:
            self._fast[job_type] = _fast_check(self.schemas[job_type])
        check = self._fast[job_type]
        if check is None:
            return False
        import fastjsonschema  # imported already: `_fast_check` compiled ``check``

        try:
            check(payload)
        except fastjsonschema.JsonSchemaException:
            return False
        return True


def _fast_check(schema: Mapping[str, Any] | None) -> FastCheck | None:
    if schema is None or not _same_in_draft_7(schema):
        return None
    import fastjsonschema

    check: FastCheck = fastjsonschema.compile(dict(schema), use_default=False)
    return check


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
    if schema is None:
        return None
    from jsonschema import Draft202012Validator, FormatChecker
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, Mapping):
        raise ConfigError(f"job type {name!r}: the schema must be an object or null")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ConfigError(f"job type {name!r}: invalid JSON Schema: {exc.message}") from None
    return Draft202012Validator(schema, format_checker=FormatChecker())
