"""Logging for every process: one setup call, plain text or one JSON object per line.

Every process (worker, producer, operator, local mode) calls `setup_logging` once at
start with its `LogSettings` (``JOBQUEUE_LOG_LEVEL``, ``JOBQUEUE_LOG_FORMAT`` or the
``--log-level`` / ``--log-format`` flags). It configures the root logger, so libraries
that log through the standard module (Kopf, aiohttp) come out in the same format.

A log call about one job passes its fields with ``extra=job_fields(...)``: ``job_id``,
``job_type``, ``queue``, ``attempts``, ``trace_id``. The process's own fields
(``component``, ``pod``) are stamped on every record by a filter. In JSON each becomes
a key (python-json-logger with orjson does the formatting); in text they stay in the
message, which names the job already.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobqueue.core.errors import ConfigError
from jobqueue.core.settings import env_value

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_RENAMES = {"levelname": "level", "name": "logger", "k8s_ref": "object"}
"""Record attributes under the names log pipelines expect (``k8s_ref``: the object a
Kopf log line is about, as Kopf's own JSON format calls it)."""
KOPF_INTERNAL = ("settings", "k8s_skip", "taskName")
"""Attributes on records that no JSON line should carry (Kopf's settings object)."""


def parse_level(text: str) -> str:
    """A level name (any case) as ``logging`` knows it; ValueError for anything else."""
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return level


def parse_format(text: str) -> str:
    fmt = text.strip().lower()
    if fmt not in LOG_FORMATS:
        raise ValueError(f"expected one of {', '.join(LOG_FORMATS)}")
    return fmt


@dataclass(frozen=True, slots=True)
class LogSettings:
    """How a process logs. Environment: ``JOBQUEUE_LOG_LEVEL``, ``JOBQUEUE_LOG_FORMAT``."""

    level: str = "INFO"
    """Least level logged: DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    format: str = "text"
    """``text`` (one human line per record) or ``json`` (one JSON object per line)."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "level", parse_level(self.level))
            object.__setattr__(self, "format", parse_format(self.format))
        except ValueError as exc:
            raise ConfigError(f"log settings: {exc}") from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LogSettings:
        env = os.environ if environ is None else environ
        return cls(
            level=env_value(env, "JOBQUEUE_LOG_LEVEL", "INFO", parse_level),
            format=env_value(env, "JOBQUEUE_LOG_FORMAT", "text", parse_format),
        )

    def with_flags(self, level: str | None, fmt: str | None) -> LogSettings:
        """These settings with the flags that were given (not None) applied on top."""
        return LogSettings(level=level or self.level, format=fmt or self.format)


class TextFormatter(logging.Formatter):
    """One human line per record; a ``traceback`` field (a dead letter's) follows it."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):  # a Kopf line about one object: say which, as Kopf does
            record = logging.makeLogRecord(record.__dict__)
            where = "/".join(str(ref[k]) for k in ("namespace", "name") if ref.get(k))
            record.msg = f"[{where}] {record.msg}"
        text = super().format(record)
        tb = getattr(record, "traceback", None)
        return f"{text}\n{tb.rstrip()}" if tb else text


class _ProcessFields(logging.Filter):
    """Stamps the process's own fields (component, pod) on every record."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__()
        self.fields = dict(fields)

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in self.fields.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def _json_formatter() -> logging.Formatter:
    # Imported here: a process logging text never pays for it.
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.orjson import OrjsonFormatter

    return OrjsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields=JSON_RENAMES,
        reserved_attrs=[*RESERVED_ATTRS, *KOPF_INTERNAL],
        timestamp="time",  # ISO-8601 UTC
    )


def setup_logging(settings: LogSettings, component: str, **fields: str) -> None:
    """Configure the root logger for this process (replacing any earlier setup).

    ``component`` (``worker``, ``producer``, ``operator``, ``dev``) and ``fields`` (e.g.
    ``pod``, ``queue``) appear on every JSON record.
    """
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(_json_formatter())
    else:
        handler.setFormatter(TextFormatter())
    handler.addFilter(_ProcessFields({"component": component, **fields}))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)


def job_fields(
    job_id: str, job_type: str, queue: str, attempts: int | None = None, **more: Any
) -> dict[str, Any]:
    """``extra=`` of a log call about one job: the keys a JSON line carries for it."""
    fields: dict[str, Any] = {"job_id": job_id, "job_type": job_type, "queue": queue}
    if attempts is not None:
        fields["attempts"] = attempts
    fields.update({k: v for k, v in more.items() if v is not None})
    return fields
